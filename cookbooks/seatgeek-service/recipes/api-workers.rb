# Sample recipe (api-workers): replace with the real one.
file '/etc/fleet/recipes/seatgeek-service-api-workers' do
  content "seatgeek-service::api-workers\n"
  mode '0644'
end
