# Sample recipe (decommission-services): replace with the real one.
file '/etc/fleet/recipes/seatgeek-decommission-services' do
  content "seatgeek::decommission-services\n"
  mode '0644'
end
