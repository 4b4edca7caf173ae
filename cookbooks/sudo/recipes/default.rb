# Sample recipe: replace with the real one.
file '/etc/sudoers.d/platform' do
  content "%platform ALL=(ALL) NOPASSWD:ALL\n"
  mode '0440'
end
