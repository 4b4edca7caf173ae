# Sample recipe (base-server): replace with the real one.
directory "/etc/fleet/recipes" do
  recursive true
end

file '/etc/fleet/recipes/seatgeek-base-server' do
  content "seatgeek::base-server\n"
  mode '0644'
end
