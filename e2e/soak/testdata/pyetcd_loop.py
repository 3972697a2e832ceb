# python-etcd with username and password over https, writing, reading,
# compare-and-swapping and appending in-order keys under /app/py until the
# stop file exists, idle in the soak's quiet windows (so every token
# expires). One line per request on stdout:
#   ok <op> <key> <modifiedIndex> <value>     fail <op> <key> <error>
# Arguments: host port ca user password t0 busy quiet stopfile.
import os, sys, time, etcd

host, port, ca, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
t0, busy, quiet, stop = float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]), sys.argv[9]


def quiet_now():
    return (time.time() - t0) % (busy + quiet) >= busy


def out(*words):
    print(' '.join(str(w).replace('\n', ' ') for w in words), flush=True)


c = etcd.Client(host=host, port=port, protocol='https', ca_cert=ca, username=user, password=password,
                allow_reconnect=False, read_timeout=60)
n = 0
cas_index = 0
while not os.path.exists(stop):
    if quiet_now():
        time.sleep(0.1)
        continue
    n += 1
    key = '/app/py/k/%d' % n
    try:
        r = c.write(key, str(n))
        out('ok', 'write', key, r.modifiedIndex, n)
    except Exception as e:
        out('fail', 'write', key, repr(e))
        time.sleep(0.05)
        continue  # its read would fail for the write's failure, not its own
    try:
        r = c.read(key)
        if r.value == str(n):
            out('ok', 'read', key, r.modifiedIndex, n)
        else:
            out('fail', 'read', key, 'value %r, wrote %r' % (r.value, str(n)))
    except Exception as e:
        out('fail', 'read', key, repr(e))
    if n % 5 == 0:
        # compare-and-swap on the index this client last wrote (or create)
        try:
            if cas_index:
                r = c.write('/app/py/cas', str(n), prevIndex=cas_index)
            else:
                r = c.write('/app/py/cas', str(n), prevExist=False)
            cas_index = r.modifiedIndex
            out('ok', 'cas', '/app/py/cas', r.modifiedIndex, n)
        except Exception as e:
            out('fail', 'cas', '/app/py/cas', repr(e))
            try:
                cas_index = c.read('/app/py/cas', quorum=True).modifiedIndex
            except Exception:
                cas_index = 0
    if n % 10 == 0:
        try:
            r = c.write('/app/py/queue', str(n), append=True)
            out('ok', 'inorder', r.key, r.modifiedIndex, n)
        except Exception as e:
            out('fail', 'inorder', '/app/py/queue', repr(e))
    time.sleep(0.05)
out('done', n)
