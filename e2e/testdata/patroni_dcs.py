# Patroni's etcd (v2) DCS driven directly against the shim: what a Patroni
# node does to bootstrap, lead, register, configure and fail over.
import sys, time
from patroni.dcs.etcd import Etcd
host = sys.argv[1]
cfg = {'host': host, 'scope': 'pgcluster', 'name': 'node1', 'namespace': '/service/', 'ttl': 30,
       'retry_timeout': 10, 'loop_wait': 10}
dcs = Etcd(cfg)
assert dcs.initialize(create_new=True, sysid='7000000000000000001'), 'initialize'
assert not dcs.initialize(create_new=True, sysid='7000000000000000002'), 'second initialize must fail'
assert dcs.attempt_to_acquire_leader(), 'acquire leader'
assert dcs.touch_member({'conn_url': 'postgres://127.0.0.1:5432/postgres', 'api_url': 'http://127.0.0.1:8008/patroni', 'state': 'running', 'role': 'master'})
c = dcs.get_cluster()
assert c.leader and c.leader.name == 'node1', c.leader
assert c.initialize == '7000000000000000001', c.initialize
assert [m.name for m in c.members] == ['node1'], c.members
assert dcs.set_config_value('{"ttl": 30}')
c = dcs.get_cluster()
assert c.config and c.config.data.get('ttl') == 30, c.config
try:
    ok = dcs.update_leader(c.leader, None)
except TypeError:
    ok = dcs.update_leader(None)
assert ok, 'update leader'
dcs2 = Etcd(dict(cfg, name='node2'))
assert not dcs2.attempt_to_acquire_leader(), 'a second node took the leader key'
assert dcs.delete_leader(), 'delete leader'
assert dcs2.attempt_to_acquire_leader(), 'second node could not take the free leader key'
assert dcs.cancel_initialization()
assert dcs.delete_cluster()
print('patroni dcs ok')
