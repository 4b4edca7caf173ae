# Sample recipe (djjob): replace with the real one.
file '/etc/fleet/recipes/seatgeek-service-djjob' do
  content "seatgeek-service::djjob\n"
  mode '0644'
end
