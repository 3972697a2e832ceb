# Patroni's etcd (v2) DCS driven directly against the shim: what a Patroni
# node does to bootstrap, lead, register, configure, and hand over after a
# replica's long poll on the leader key.
#
#   patroni_dcs.py HOST [TOKEN_TTL]
#
# With TOKEN_TTL (seconds) it logs in as the user patroni, who may only
# touch /service/*, against a shim in front of a member with auth on, and
# lets the member's token TTL pass between the steps: every step must still
# succeed.
import sys, time, threading
from patroni.dcs.etcd import Etcd
host = sys.argv[1]
cfg = {'host': host, 'scope': 'pgcluster', 'name': 'node1', 'namespace': '/service/', 'ttl': 30,
       'retry_timeout': 10, 'loop_wait': 10}
if len(sys.argv) > 2:
    ttl = float(sys.argv[2])
    past_ttl = lambda: time.sleep(ttl + 1.5)
    cfg.update(username='patroni', password='patronipw')
    done = 'patroni dcs with credentials ok'
else:
    past_ttl = lambda: None
    done = 'patroni dcs ok'
dcs = Etcd(cfg)
assert dcs.initialize(create_new=True, sysid='7000000000000000001'), 'initialize'
past_ttl()
assert not dcs.initialize(create_new=True, sysid='7000000000000000002'), 'second initialize must fail'
assert dcs.attempt_to_acquire_leader(), 'acquire leader'
assert dcs.touch_member({'conn_url': 'postgres://127.0.0.1:5432/postgres', 'api_url': 'http://127.0.0.1:8008/patroni', 'state': 'running', 'role': 'master'})
past_ttl()
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
# A replica's long poll on the leader key, answered by the leader's
# deletion (with credentials: after the token TTL has passed).
dcs2 = Etcd(dict(cfg, name='node2'))
c2 = dcs2.get_cluster()
watched = {}
def watch():
    try:
        watched['r'] = dcs2._client.watch(dcs2.leader_path, index=c2.leader.index + 1, timeout=30)
    except Exception as e:
        watched['e'] = repr(e)
th = threading.Thread(target=watch); th.start()
assert not dcs2.attempt_to_acquire_leader(), 'a second node took the leader key'
past_ttl()
assert dcs.delete_leader(), 'delete leader'
th.join(40)
assert 'r' in watched and watched['r'].action in ('delete', 'compareAndDelete'), watched
assert dcs2.attempt_to_acquire_leader(), 'second node could not take the free leader key'
assert dcs.cancel_initialization()
assert dcs.delete_cluster()
print(done)
