// Names are bytes: a name that is not valid UTF-8 is held as a string with one lone surrogate per
// invalid byte, and comes back as exactly the bytes it was.
import { decodeName, encodeName, nameByteLength } from '../../src/store/names';

const bytes = (...b: number[]) => Buffer.from(b);

test('a UTF-8 name is its text, and its bytes are its UTF-8', () => {
  const name = decodeName(Buffer.from('café-😀.txt'));
  expect(name).toBe('café-😀.txt');
  expect(encodeName(name)).toEqual(Buffer.from('café-😀.txt'));
});

test('each invalid byte becomes U+DC00 plus the byte, and valid runs around it stay text', () => {
  // 0xff alone; "é" (c3 a9); 0xe9 (Latin-1 é) before "x"
  const name = decodeName(bytes(0xff, 0x61, 0xc3, 0xa9, 0xe9, 0x78));
  expect(name).toBe('\udcffaé\udce9x');
});

test('overlong forms, encoded surrogates, truncated sequences and code points past U+10FFFF are invalid bytes', () => {
  const cases = [
    bytes(0xc0, 0xaf), // overlong "/"
    bytes(0xe0, 0x80, 0xaf), // overlong "/"
    bytes(0xed, 0xa0, 0x80), // U+D800 encoded
    bytes(0xe2, 0x82), // truncated "€"
    bytes(0xf4, 0x90, 0x80, 0x80), // U+110000
    bytes(0x80), // a lone continuation byte
  ];
  for (const b of cases) {
    const name = decodeName(b);
    expect([...name].map((c) => c.charCodeAt(0))).toEqual([...b].map((x) => 0xdc00 + x));
    expect(encodeName(name)).toEqual(b);
  }
});

test('every two-byte name round-trips to its bytes', () => {
  for (let a = 1; a < 256; a++) {
    for (let b = 1; b < 256; b++) {
      const b2 = bytes(a, b);
      const back = encodeName(decodeName(b2));
      if (!back.equals(b2)) throw new Error(`${b2.toString('hex')} came back as ${back.toString('hex')}`);
    }
  }
});

test('decodes a slice of a key without copying the rest', () => {
  const key = Buffer.concat([Buffer.alloc(8, 7), bytes(0x6e, 0xfe)]);
  expect(decodeName(key, 8)).toBe('n\udcfe');
});

test('the byte length of a name counts each escaped byte once', () => {
  expect(nameByteLength('\udcff\udcfe')).toBe(2);
  expect(nameByteLength('é😀')).toBe(6);
  expect(nameByteLength('plain')).toBe(5);
});
