# Sample recipe (collect-services): replace with the real one.
file '/etc/fleet/recipes/seatgeek-collect-services' do
  content "seatgeek::collect-services\n"
  mode '0644'
end
