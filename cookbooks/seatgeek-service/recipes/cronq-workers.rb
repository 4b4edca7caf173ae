# Sample recipe (cronq-workers): replace with the real one.
file '/etc/fleet/recipes/seatgeek-service-cronq-workers' do
  content "seatgeek-service::cronq-workers\n"
  mode '0644'
end
