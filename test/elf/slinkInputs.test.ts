// `slinkyfs slink` on inputs it must decline: one clear line on stderr, a non-zero exit (2), no
// output file, never a stack trace or a hang. And the --dir summary.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { slinkyfs } from '../helpers/cli';
import { run, tempDir } from './slinkHelpers';

let dir: string;
beforeAll(() => {
  dir = tempDir('inputs');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Buffer | string, mode = 0o755): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  fs.chmodSync(p, mode);
  return p;
}

function slinkRefused(input: string, extra: string[] = []) {
  const out = path.join(dir, `${path.basename(input)}.out`);
  const r = slinkyfs(['slink', input, '-o', out, ...extra], { timeout: 30000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout, wrote: fs.existsSync(out) };
}

/** A real program with one header field changed. */
function patched(name: string, at: number, bytes: number[]): string {
  const b = fs.readFileSync('/usr/bin/true');
  Buffer.from(bytes).copy(b, at);
  return file(name, b);
}

test('a text file is not an ELF file', () => {
  const p = file('notes.txt', 'hello\n');
  expect(slinkRefused(p)).toEqual({ status: 2, stdout: '', wrote: false, stderr: `slinkyfs: cannot slink ${p}: ${p} is not an ELF file\n` });
});

test('a #! script is named as a script', () => {
  const p = file('script.sh', '#!/bin/sh\necho hi\n');
  expect(slinkRefused(p)).toEqual({ status: 2, stdout: '', wrote: false, stderr: `slinkyfs: cannot slink ${p}: ${p} is a script (#!/bin/sh)\n` });
});

test('a 32-bit ELF file is refused as such', () => {
  const p = patched('elf32', 4, [1]); // EI_CLASS = ELFCLASS32
  expect(slinkRefused(p)).toMatchObject({ status: 2, wrote: false, stderr: `slinkyfs: cannot slink ${p}: ${p} is a 32-bit ELF file (ELFCLASS32), not x86-64\n` });
});

test('an ELF file for another machine is refused as such', () => {
  const p = patched('aarch64', 18, [183, 0]); // e_machine = EM_AARCH64
  expect(slinkRefused(p)).toMatchObject({ status: 2, wrote: false, stderr: `slinkyfs: cannot slink ${p}: ${p} is for machine 183, not x86-64\n` });
});

test('a statically linked program is reported, and copied unchanged only with --force', () => {
  const r = slinkRefused('/usr/sbin/ldconfig');
  expect(r).toEqual({
    status: 2,
    stdout: '',
    wrote: false,
    stderr: 'slinkyfs: cannot slink /usr/sbin/ldconfig: /usr/sbin/ldconfig is statically linked: it needs no slinking (use --force to copy it as it is)\n',
  });
  const out = path.join(dir, 'ldconfig.copy');
  const forced = slinkyfs(['slink', '/usr/sbin/ldconfig', '-o', out, '--force']);
  expect(forced.status).toBe(0);
  expect(fs.readFileSync(out).equals(fs.readFileSync('/usr/sbin/ldconfig'))).toBe(true);
});

test('an already slinked file is reported and left alone', () => {
  const once = path.join(dir, 'true.slinked');
  expect(slinkyfs(['slink', '/usr/bin/true', '-o', once]).status).toBe(0);
  const before = fs.readFileSync(once);
  const r = slinkRefused(once);
  expect(r).toEqual({ status: 0, stdout: '', wrote: false, stderr: `slinkyfs: ${once} is already slinked; nothing to do\n` });
  expect(fs.readFileSync(once).equals(before)).toBe(true);
});

test('a library that cannot be found is named, with the object that needs it', () => {
  const lib = path.join(dir, 'libgone.so');
  const prog = path.join(dir, 'needs-gone');
  fs.writeFileSync(path.join(dir, 'gone.c'), 'int gone(void) { return 7; }\n');
  fs.writeFileSync(path.join(dir, 'main.c'), 'int gone(void);\nint main(void) { return gone(); }\n');
  const cc = (args: string[]) => expect(spawnSync('cc', args, { cwd: dir, encoding: 'utf8' }).status).toBe(0);
  cc(['-shared', '-fPIC', '-Wl,-soname,libgone.so.3', '-o', lib, 'gone.c']);
  cc(['-o', prog, 'main.c', lib]);
  fs.rmSync(lib);
  expect(slinkRefused(prog)).toEqual({
    status: 2,
    stdout: '',
    wrote: false,
    stderr: `slinkyfs: cannot slink ${prog}: libgone.so.3 (needed by ${prog}) not found\n`,
  });
});

describe('a shared library is named as one, not as a program', () => {
  const refusal = (p: string) => ({
    status: 2,
    stdout: '',
    wrote: false,
    stderr: `slinkyfs: cannot slink ${p}: ${p} is a shared library, not a program: slink takes programs, and their libraries go in with them\n`,
  });

  test('one with DT_NEEDED (libz)', () => {
    const p = path.join(dir, 'libz.so.1');
    fs.copyFileSync('/usr/lib/x86_64-linux-gnu/libz.so.1', p);
    expect(slinkRefused(p)).toEqual(refusal(p));
  });

  test('one with no DT_NEEDED, which would otherwise look statically linked', () => {
    const p = path.join(dir, 'libalone.so');
    fs.writeFileSync(path.join(dir, 'alone.c'), 'int alone(void) { return 7; }\n');
    expect(spawnSync('cc', ['-shared', '-fPIC', '-nostdlib', '-Wl,-soname,libalone.so.1', '-o', p, 'alone.c'], { cwd: dir }).status).toBe(0);
    expect(slinkRefused(p)).toEqual(refusal(p));
  });
});

test('a set-uid program is refused; with --force it is slinked without the set-uid bit', () => {
  const p = path.join(dir, 'true-setuid');
  fs.copyFileSync('/usr/bin/true', p);
  fs.chmodSync(p, 0o4755);
  expect(slinkRefused(p)).toEqual({
    status: 2,
    stdout: '',
    wrote: false,
    stderr: `slinkyfs: cannot slink ${p}: ${p} is set-uid: a slinked copy would run without that privilege (use --force to slink it anyway)\n`,
  });
  const out = path.join(dir, 'true-setuid.forced');
  expect(slinkyfs(['slink', p, '-o', out, '--force']).status).toBe(0);
  expect(fs.statSync(out).mode & 0o7777).toBe(0o755);
  expect(run(out, []).status).toBe(0);
});

test('a set-gid program is refused too', () => {
  const p = path.join(dir, 'true-setgid');
  fs.copyFileSync('/usr/bin/true', p);
  fs.chmodSync(p, 0o2755);
  expect(slinkRefused(p).stderr).toBe(`slinkyfs: cannot slink ${p}: ${p} is set-gid: a slinked copy would run without that privilege (use --force to slink it anyway)\n`);
});

describe('truncated and hostile ELF headers give one line and exit 2, quickly', () => {
  const ls = fs.readFileSync('/usr/bin/ls');
  const variants: [string, () => Buffer][] = [
    ['truncated to 4 bytes', () => ls.subarray(0, 4)],
    ['truncated to 40 bytes', () => ls.subarray(0, 40)],
    ['truncated inside the program headers', () => ls.subarray(0, 200)],
    ['truncated before the dynamic section', () => ls.subarray(0, 3000)],
    ['truncated to half', () => ls.subarray(0, ls.length >> 1)],
    ['e_phnum 65535', () => { const b = Buffer.from(ls); b.writeUInt16LE(0xffff, 56); return b; }],
    ['e_phoff past the end', () => { const b = Buffer.from(ls); b.writeBigUInt64LE(1n << 40n, 32); return b; }],
    ['e_phentsize 7', () => { const b = Buffer.from(ls); b.writeUInt16LE(7, 54); return b; }],
    ['PT_DYNAMIC offset past the end', () => {
      const b = Buffer.from(ls);
      for (let i = 0; i < b.readUInt16LE(56); i++) {
        const ph = 64 + i * 56;
        if (b.readUInt32LE(ph) === 2) b.writeBigUInt64LE(1n << 50n, ph + 8);
      }
      return b;
    }],
  ];
  test.each(variants)('%s', (label, make) => {
    const p = file(`bad-${label.replace(/\W+/g, '-')}`, make());
    const started = Date.now();
    const r = slinkRefused(p);
    expect(Date.now() - started).toBeLessThan(10000);
    expect(r.status).toBe(2);
    expect(r.wrote).toBe(false);
    expect(r.stderr).toMatch(new RegExp(`^slinkyfs: cannot slink ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: [^\n]+\n$`));
  });
});

test('a missing input is one line, exit 2', () => {
  const p = path.join(dir, 'nope');
  expect(slinkRefused(p)).toEqual({ status: 2, stdout: '', wrote: false, stderr: `slinkyfs: cannot slink ${p}: ${p}: no such file or directory\n` });
});

test('--dir slinks what it can and summarises the rest with reasons', () => {
  const src = path.join(dir, 'bin');
  const out = path.join(dir, 'bin.out');
  fs.mkdirSync(src);
  fs.copyFileSync('/usr/bin/true', path.join(src, 'true'));
  fs.copyFileSync('/usr/bin/echo', path.join(src, 'echo'));
  fs.linkSync(path.join(src, 'echo'), path.join(src, 'echo2'));
  fs.symlinkSync('true', path.join(src, 'yes-true'));
  fs.writeFileSync(path.join(src, 'hello.sh'), '#!/bin/sh\necho hi\n');
  fs.copyFileSync('/usr/sbin/ldconfig', path.join(src, 'static'));
  const r = slinkyfs(['slink', '--dir', src, '-o', out]);
  expect(r.status).toBe(0);
  expect(r.stdout).toBe(
    [
      'skipped: echo2: same file as echo, linked',
      `skipped: ${src}/hello.sh is a script (#!/bin/sh)`,
      `skipped: ${src}/static is statically linked: it needs no slinking (use --force to copy it as it is)`,
      'skipped: yes-true: symbolic link to true, recreated',
      `slinked 2, skipped 4, failed 0 (of 6 in ${src})`,
      '',
    ].join('\n'),
  );
  expect(fs.readdirSync(out).sort()).toEqual(['echo', 'echo2', 'true', 'yes-true']);
  expect(fs.readlinkSync(path.join(out, 'yes-true'))).toBe('true');
  expect(run(path.join(out, 'echo2'), ['hi']).stdout.toString()).toBe('hi\n');
});
