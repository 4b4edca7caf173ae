# Sample recipe (customer-web): replace with the real one.
file '/etc/fleet/recipes/seatgeek-customer-web' do
  content "seatgeek::customer-web\n"
  mode '0644'
end
