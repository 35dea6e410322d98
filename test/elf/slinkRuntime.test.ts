// A running slinked program is the program itself: one process with the PID it was started as,
// its own exit status and signals, argv[0] as invoked, the environment exactly as passed (to it
// and to its children), and /proc/self/exe naming the slinked file.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLEAN_ENV, run, slinkPrograms, tempDir } from './slinkHelpers';

let dir: string;
let bin: Map<string, string>;

beforeAll(async () => {
  dir = tempDir('runtime');
  bin = await slinkPrograms(['sleep', 'bash', 'ls', 'cat', 'python3', 'id'], dir);
}, 120000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Starts a slinked `sleep 30` and waits until the loader has handed over to the program. */
async function startSleep(env: NodeJS.ProcessEnv = CLEAN_ENV) {
  const child = spawn(bin.get('sleep')!, ['30'], { env, stdio: 'ignore' });
  const pid = child.pid!;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  // Before main() runs, /proc/PID/cmdline still shows the loader's options; afterwards the
  // program is blocked in nanosleep.
  for (let i = 0; i < 200; i++) {
    const wchan = fs.readFileSync(`/proc/${pid}/wchan`, 'utf8');
    if (wchan.includes('nanosleep')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, pid, exited };
}

test('the program runs in the process the kernel started: same PID, one thread, no children', async () => {
  const { child, pid, exited } = await startSleep();
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Threads:\s+1$/m);
    expect(status).toMatch(new RegExp(`^PPid:\\s+${process.pid}$`, 'm'));
    expect(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()).toBe('');
    expect(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('sleep');
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});

test('/proc/PID/exe is the slinked file itself', async () => {
  const { child, pid, exited } = await startSleep();
  try {
    expect(fs.readlinkSync(`/proc/${pid}/exe`)).toBe(bin.get('sleep'));
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});

test('/proc/PID/environ is exactly the environment passed in (no LD_* added)', async () => {
  const env = { PATH: '/usr/bin', ODD: 'x=y z', EMPTY: '', UNICODE: 'héllo' };
  const { child, pid, exited } = await startSleep(env);
  try {
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
    expect(environ).toBe(Object.entries(env).map(([k, v]) => `${k}=${v}\0`).join(''));
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});

test('a signal that kills the program is reported as that signal', async () => {
  const { child, exited } = await startSleep();
  child.kill('SIGTERM');
  expect(await exited).toEqual({ code: null, signal: 'SIGTERM' });
});

test('the program exit status comes through unchanged', () => {
  const r = run(bin.get('bash')!, ['-c', 'exit 42']);
  expect(r.status).toBe(42);
});

test('a program that kills itself dies of that signal', () => {
  const r = run(bin.get('bash')!, ['-c', 'kill -SEGV $$']);
  expect(r.signal).toBe('SIGSEGV');
});

test('argv[0] is what the caller passed', () => {
  const r = spawnSync(bin.get('bash')!, ['-c', 'echo "$0"'], { argv0: 'my-shell', env: CLEAN_ENV });
  expect(r.stdout.toString()).toBe('my-shell\n');
  const ls = spawnSync(bin.get('ls')!, ['/nonexistent'], { argv0: 'custom-ls', env: CLEAN_ENV });
  expect(ls.stderr.toString()).toBe("custom-ls: cannot access '/nonexistent': No such file or directory\n");
});

test('children see the same environment as those of the dynamic program (nothing leaked)', () => {
  const env = { ...CLEAN_ENV, LD_LIBRARY_PATH: '/nonexistent-dir', MARK: '1' };
  const script = '/usr/bin/env; /usr/bin/cat /proc/$$/environ | /usr/bin/tr "\\0" "\\n"';
  const dynamic = run('/usr/bin/bash', ['-c', script], { env });
  const slinked = spawnSync(bin.get('bash')!, ['-c', script], { argv0: '/usr/bin/bash', env, cwd: '/' });
  expect(slinked.stdout.toString()).toBe(dynamic.stdout.toString());
  expect(slinked.stdout.toString()).not.toMatch(/^LD_(?!LIBRARY_PATH=\/nonexistent-dir$)/m);
});

test("the program's own descriptors get the usual numbers (the loader's objects sit high)", () => {
  const code = 'import os; print(os.open("/dev/null", os.O_RDONLY))';
  const r = spawnSync(bin.get('python3')!, ['-c', code], { argv0: 'python3', env: CLEAN_ENV });
  expect(r.stdout.toString()).toBe('3\n');
});

test('closed standard descriptors stay closed', () => {
  // If the stub's memfds took the free number 0, cat would read a library instead of failing.
  const closedStdin = (file: string) => run('/usr/bin/bash', ['-c', `exec -a /usr/bin/cat ${file} <&- 2>&1`]);
  const dynamic = closedStdin('/usr/bin/cat');
  const slinked = closedStdin(bin.get('cat')!);
  expect({ status: slinked.status, out: slinked.stdout.toString() }).toEqual({ status: dynamic.status, out: dynamic.stdout.toString() });
  expect(dynamic.stdout.toString()).toBe('/usr/bin/cat: -: Bad file descriptor\n/usr/bin/cat: closing standard input: Bad file descriptor\n');
});

test('python3 behaves as the dynamic one on the host, extension modules included', () => {
  const code = [
    'import sys, json, hashlib, ssl, sqlite3, zlib, decimal, ctypes',
    'print(sys.executable, sys.prefix, sys.version_info[:3])',
    'print(json.dumps({"a": [1, 2.5, None]}), hashlib.sha256(b"x").hexdigest()[:16])',
    'print(ssl.OPENSSL_VERSION, sqlite3.sqlite_version, zlib.crc32(b"abc"), decimal.Decimal(1) / 7)',
    'print(ctypes.CDLL(None).getpid() == __import__("os").getpid())',
  ].join('\n');
  const dynamic = spawnSync('/usr/bin/python3', ['-c', code], { argv0: 'python3', env: CLEAN_ENV });
  const slinked = spawnSync(bin.get('python3')!, ['-c', code], { argv0: 'python3', env: CLEAN_ENV });
  expect(dynamic.status).toBe(0);
  expect({ status: slinked.status, out: slinked.stdout.toString(), err: slinked.stderr.toString() }).toEqual({
    status: 0,
    out: dynamic.stdout.toString(),
    err: '',
  });
});

test('made set-uid by hand, a slinked program runs without the privilege', () => {
  // slink never writes set-id bits; this is what the stub does if someone adds them.
  const setuid = path.join(dir, 'id-setuid');
  fs.copyFileSync(bin.get('id')!, setuid);
  fs.chmodSync(setuid, 0o4755);
  const r = spawnSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', setuid], { env: CLEAN_ENV });
  expect({ status: r.status, out: r.stdout.toString(), err: r.stderr.toString() }).toEqual({
    status: 0,
    out: 'uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n',
    err: '',
  });
});
