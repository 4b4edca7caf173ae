# Sample recipe (api): replace with the real one.
file '/etc/fleet/recipes/seatgeek-service-api' do
  content "seatgeek-service::api\n"
  mode '0644'
end
