# Two Patroni nodes on the etcd (v2) DCS with username and password over
# https, running Patroni's HA loop until the stop file exists: the leader
# (node1, which initializes first) refreshes the leader key (get_cluster,
# update_leader, touch_member), the other follows (get_cluster, a refused
# attempt_to_acquire_leader, touch_member, and the long poll on the leader
# key Patroni's replicas wait in). They idle in the soak's quiet windows.
# One line per operation on stdout:
#   ok <node> <op> <returned True/False>       fail <node> <op> <error>
# and every warning Patroni logs (it logs what its etcd client retried or
# gave up) as a failure: fail log <logger> <message>.
# Arguments: host:port ca user password t0 busy quiet stopfile.
import logging, os, sys, threading, time
from patroni.dcs.etcd import Etcd

host, ca, user, password = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
t0, busy, quiet, stop = float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
lock = threading.Lock()


def quiet_now():
    return (time.time() - t0) % (busy + quiet) >= busy


def out(*words):
    with lock:
        print(' '.join(str(w).replace('\n', ' ') for w in words), flush=True)


class Failures(logging.Handler):
    def emit(self, record):
        out('fail', 'log', record.name, record.getMessage())


logging.basicConfig(level=logging.WARNING, handlers=[Failures(level=logging.WARNING)])

cfg = {'host': host, 'protocol': 'https', 'cacert': ca, 'username': user, 'password': password,
       'scope': 'soak', 'namespace': '/app/service/', 'ttl': 120, 'retry_timeout': 60, 'loop_wait': 2}
# (retry_timeout 60: Patroni gives each of the three shims a third of it per
# request; the machine is shared, and a slow answer is not what is counted)


def op(node, name, fn, want=True):
    try:
        got = fn()
    except Exception as e:
        out('fail', node, name, repr(e))
        return None
    if want is not None and bool(got) != want:
        out('fail', node, name, 'returned %r' % (got,))
    else:
        out('ok', node, name, bool(got))
    return got


def run(name):
    dcs = Etcd(dict(cfg, name=name))
    member = {'conn_url': 'postgres://127.0.0.1:5432/postgres', 'api_url': 'http://127.0.0.1:8008/patroni',
              'state': 'running', 'role': 'replica'}
    if name == 'node1':
        op(name, 'initialize', lambda: dcs.initialize(create_new=True, sysid='7000000000000000001'))
    # Patroni's HA loop: the holder of the leader key refreshes it, the
    # other node tries to take it (refused while it is held) and waits on it.
    while not os.path.exists(stop):
        if quiet_now():
            time.sleep(0.1)
            continue
        c = op(name, 'get_cluster', dcs.get_cluster, want=None)
        if c is None:
            time.sleep(1)
            continue
        leads = bool(c.leader and c.leader.name == name)
        if leads:
            op(name, 'update_leader', lambda: dcs.update_leader(None))
        else:
            # refused while another node holds the key; with no holder
            # either outcome is right (the other node may win the race)
            op(name, 'attempt_to_acquire_leader', dcs.attempt_to_acquire_leader, want=False if c.leader else None)
        member['role'] = 'master' if leads else 'replica'
        op(name, 'touch_member', lambda: dcs.touch_member(member))
        if leads:
            time.sleep(1)
        else:
            op(name, 'watch', lambda: dcs.watch(c.leader and c.leader.index, 2), want=None)


threads = [threading.Thread(target=run, args=('node1',)), threading.Thread(target=run, args=('node2',))]
threads[0].start()
time.sleep(1)
threads[1].start()
for th in threads:
    th.join()
out('done')
