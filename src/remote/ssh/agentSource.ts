/**
 * The command agent's program: Python 3 (3.5 and later, standard library only), shipped on its
 * command line by ssh/agent.ts and started with one exec per connection, so nothing is installed on
 * the host. Kept in a string so that it needs no asset copying at build time.
 *
 * Protocol, one JSON object per line each way (a write's line is followed by its files' raw bytes):
 *   in:  {"t":"run","id":N,"cmd":STR,"env":{NAME:VALUE},"max":BYTES}   {"t":"kill","id":N}
 *        {"t":"read","id":N,"files":[[PATH,BYTES],...]}
 *        {"t":"write","id":N,"files":[[PATH,MODE,SIZE],...]} followed by the files' raw bytes, in order
 *   out: {"t":"hello","v":2,"pid":P}  {"t":"start","id":N,"pid":P}
 *        {"t":"exit","id":N,"code":C,"out":B64,"err":B64}  {"t":"error","id":N,"message":STR}
 *        {"t":"files","id":N,"files":[{"b64":B64} | {"big":true} | {"error":CODE},...]}
 *        {"t":"written","id":N,"files":[{"ok":true} | {"error":CODE},...]}
 * A command's output is kept by the agent (up to `max` bytes of each; the rest is read and dropped)
 * and sent with its exit: each message is a packet the caller decrypts and wakes for. `start` stays
 * a message of its own: a connection lost before it means the command never ran (sent again).
 * Each command is `bash --norc --noprofile -c CMD` in a session (and process group) of its own, with
 * stdin empty and the agent's environment (the login shell's, rc files included) plus `env`; so env
 * values (secrets) arrive on stdin, never on a command line. `exit` comes after both output pipes
 * closed and the command was reaped, as an ssh exec channel closes. When its stdin ends (the
 * connection dropped or was closed), the agent exits and leaves running commands alone, as sshd
 * does with a plain exec: a detached run (setsid) keeps running and is reattached as today.
 * `read` answers with each file's bytes when it holds fewer than BYTES (else `big`), or the errno
 * name that stopped it (`ENOTREG` for what is not a regular file: a pipe is never waited on),
 * in the order asked: the outputs of a run in one round trip. `write` puts each file's bytes into
 * `PATH.part` (removed first and created anew with MODE, so a file or link planted there is never
 * written through) and renames it over PATH: a run's staged files in one round trip.
 */
export const AGENT_SOURCE = String.raw`
import base64, errno, json, os, selectors, signal, stat, subprocess, sys
sel = selectors.DefaultSelector()
out = sys.stdout.buffer
def send(m):
    out.write((json.dumps(m, separators=(',', ':')) + '\n').encode('utf-8'))
    out.flush()
procs = {}
def start(m):
    rid = m['id']
    env = dict(os.environ)
    env.update(m.get('env') or {})
    try:
        p = subprocess.Popen(['bash', '--norc', '--noprofile', '-c', m['cmd']], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True, close_fds=True)
    except Exception as e:
        send({'t': 'error', 'id': rid, 'message': str(e)})
        return
    procs[rid] = {'p': p, 'open': 2, 'left': {1: m.get('max', 1048576), 2: m.get('max', 1048576)},
        'kept': {1: [], 2: []}}
    send({'t': 'start', 'id': rid, 'pid': p.pid})
    for fd, f in ((1, p.stdout), (2, p.stderr)):
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ, (rid, fd))
def kill(m):
    r = procs.get(m['id'])
    if r is None:
        return
    try:
        os.killpg(r['p'].pid, signal.SIGKILL)
    except OSError:
        pass
def read_one(path, limit):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        return {'error': errno.errorcode.get(e.errno, str(e.errno))}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {'error': 'ENOTREG'}
        parts = []
        got = 0
        while got < limit:
            b = os.read(fd, min(1048576, limit - got))
            if not b:
                break
            parts.append(b)
            got += len(b)
        if got >= limit:
            return {'big': True}
        return {'b64': base64.b64encode(b''.join(parts)).decode('ascii')}
    except OSError as e:
        return {'error': errno.errorcode.get(e.errno, str(e.errno))}
    finally:
        os.close(fd)
def read(m):
    send({'t': 'files', 'id': m['id'], 'files': [read_one(p, int(n)) for p, n in m['files']]})
def write_one(path, mode, view):
    part = path + '.part'
    try:
        try:
            os.unlink(part)
        except FileNotFoundError:
            pass
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, int(mode))
        try:
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(part, path)
        return {'ok': True}
    except OSError as e:
        return {'error': errno.errorcode.get(e.errno, str(e.errno))}
def write(m, body):
    view = memoryview(body)
    answers = []
    for p, mode, size in m['files']:
        answers.append(write_one(p, mode, view[:int(size)]))
        view = view[int(size):]
    send({'t': 'written', 'id': m['id'], 'files': answers})
def request(line):
    # A write's bytes follow its line: how many, for the reader to take before the next line.
    m = json.loads(line.decode('utf-8'))
    if m.get('t') == 'run':
        start(m)
    elif m.get('t') == 'kill':
        kill(m)
    elif m.get('t') == 'read':
        read(m)
    elif m.get('t') == 'write':
        return m, sum(int(f[2]) for f in m['files'])
    return None
def main():
    fin = sys.stdin.buffer.fileno()
    os.set_blocking(fin, False)
    sel.register(fin, selectors.EVENT_READ, None)
    send({'t': 'hello', 'v': 2, 'pid': os.getpid()})
    buf = bytearray()
    body = None
    while True:
        waiting = [rid for rid, r in procs.items() if r['open'] == 0]
        for key, _ in sel.select(0.01 if waiting else None):
            if key.data is None:
                chunk = os.read(fin, 1048576)
                if not chunk:
                    return
                buf += chunk
                while True:
                    if body is not None:
                        m, size = body
                        if len(buf) < size:
                            break
                        data = bytes(buf[:size])
                        del buf[:size]
                        body = None
                        write(m, data)
                        continue
                    nl = buf.find(b'\n')
                    if nl < 0:
                        break
                    line = bytes(buf[:nl])
                    del buf[:nl + 1]
                    if line.strip():
                        body = request(line)
                continue
            rid, fd = key.data
            r = procs[rid]
            try:
                chunk = os.read(key.fileobj.fileno(), 65536)
            except BlockingIOError:
                continue
            if chunk:
                keep = chunk[:max(0, r['left'][fd])]
                r['left'][fd] -= len(keep)
                if keep:
                    r['kept'][fd].append(keep)
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                r['open'] -= 1
        for rid in [rid for rid, r in procs.items() if r['open'] == 0]:
            code = procs[rid]['p'].poll()
            if code is not None:
                r = procs.pop(rid)
                b64 = lambda fd: base64.b64encode(b''.join(r['kept'][fd])).decode('ascii')
                send({'t': 'exit', 'id': rid, 'code': code if code >= 0 else 128 - code, 'out': b64(1), 'err': b64(2)})
try:
    main()
except (BrokenPipeError, KeyboardInterrupt):
    pass
`;
