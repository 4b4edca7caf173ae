# Sample recipe (notify-services): replace with the real one.
file '/etc/fleet/recipes/seatgeek-notify-services' do
  content "seatgeek::notify-services\n"
  mode '0644'
end
