# Sample recipe (cronq): its settings come from a data bag, as in seed 001.
cronq = data_bag_item('services', 'cronq')
file '/etc/cronq.json' do
  content Chef::JSONCompat.to_json_pretty(cronq.to_hash)
  mode '0644'
end
