/* The native Rabin cut finder: the same cut rule as src/chunking/rabin.ts (the reference), on
 * 64-bit fingerprints. Tables are derived here from the polynomial, independently of the JS
 * code, so the cross-check tests compare two implementations rather than one table twice. */
#include "addon.h"

#include <stdlib.h>
#include <string.h>

/* The loops track g = fingerprint XOR magic instead of the fingerprint, so a boundary is simply
 * (g & mask) == 0. Since magic only has bits below d - 8, one shift-and-reduce step maps
 * f ^ magic to f' ^ magic once the constant K = magic ^ (magic << 8) is XOR-ed in; K is folded
 * into mod_table. */
struct rabin_chunker {
  /* ((t * x^d) mod P) ^ (t << d) ^ K: XOR-ing it after a shift reduces the byte pushed out above
   * x^(d-1), clears it (so the loop needs no mask), and keeps the magic offset. */
  uint64_t mod_table[256];
  /* (b * x^(8w)) mod P: the contribution, after the shift, of the byte leaving the window. */
  uint64_t out_table[256];
  uint64_t mask, magic;
  size_t window, min_size, max_size;
  unsigned top_shift; /* d - 8 */
  bool lbfs_shape;    /* window 48, degree 53, 13-bit mask: use the specialised kernel */
};

static const napi_type_tag RABIN_TAG = {0x736c696e6b79ULL, 0x726162696e763031ULL};

static int poly_degree(uint64_t p)
{
  return p ? 63 - __builtin_clzll(p) : -1;
}

/* (a * x^shift) mod p, one bit at a time; a must already be reduced. */
static uint64_t poly_shift_mod(uint64_t a, unsigned shift, uint64_t p, int d)
{
  uint64_t top = 1ULL << d;
  for (unsigned i = 0; i < shift; i++) {
    a <<= 1;
    if (a & top) a ^= p;
  }
  return a;
}

static void rabin_finalize(napi_env env, void *data, void *hint)
{
  (void)env;
  (void)hint;
  free(data);
}

/* rabinCreate(polynomial: bigint, windowSize, minSize, maxSize, maskBits, magic) -> handle */
static napi_value rabin_create(napi_env env, napi_callback_info info)
{
  napi_value argv[6];
  if (!slinky_get_args(env, info, 6, argv, "rabinCreate takes 6 arguments")) return NULL;
  uint64_t poly;
  bool lossless = false;
  if (napi_get_value_bigint_uint64(env, argv[0], &poly, &lossless) != napi_ok || !lossless) {
    napi_throw_type_error(env, SLINKY_ERR_ARG, "polynomial must be a bigint below 2^64");
    return NULL;
  }
  int d = poly_degree(poly);
  int64_t w, min, max, bits, magic;
  if (!slinky_get_int(env, argv[1], "windowSize", 1, 255, &w)) return NULL;
  if (!slinky_get_int(env, argv[2], "minSize", w, 0x7fffffff, &min)) return NULL;
  if (!slinky_get_int(env, argv[3], "maxSize", min, 0x7fffffff, &max)) return NULL;
  if (!slinky_get_int(env, argv[4], "maskBits", 1, 31, &bits)) return NULL;
  if (!slinky_get_int(env, argv[5], "magic", 0, (1LL << bits) - 1, &magic)) return NULL;
  if (d < 41 || d > 63 || !(poly & 1)) {
    napi_throw_range_error(env, SLINKY_ERR_ARG, "polynomial degree must be 41..63 and not divisible by x");
    return NULL;
  }

  rabin_chunker *c = calloc(1, sizeof *c);
  if (!c) {
    napi_throw_error(env, SLINKY_ERR_INTERNAL, "out of memory");
    return NULL;
  }
  c->window = (size_t)w;
  c->min_size = (size_t)min;
  c->max_size = (size_t)max;
  c->mask = (1ULL << bits) - 1;
  c->magic = (uint64_t)magic;
  c->top_shift = (unsigned)(d - 8);
  c->lbfs_shape = c->window == 48 && c->top_shift == 45 && c->mask == 0x1fff;
  const uint64_t k = c->magic ^ (c->magic << 8);
  for (unsigned t = 0; t < 256; t++) {
    uint64_t top_bits = (uint64_t)t << d; /* bits above 63 fall off, as they do in the loop */
    c->mod_table[t] = poly_shift_mod(t, (unsigned)d, poly, d) ^ top_bits ^ k;
    c->out_table[t] = poly_shift_mod(t, 8 * (unsigned)w, poly, d);
  }

  napi_value handle;
  if (napi_create_external(env, c, rabin_finalize, NULL, &handle) != napi_ok) {
    free(c);
    slinky_throw_last(env, "napi_create_external");
    return NULL;
  }
  NAPI_OK(env, napi_type_tag_object(env, handle, &RABIN_TAG));
  return handle;
}

/* The scanning kernels take the hot parameters as arguments and are always inlined, so the
 * dispatcher below can instantiate them with the project's parameters as compile-time
 * constants (fixed shift, fixed window displacement) and once more with run-time values. */
#define KERNEL static inline __attribute__((always_inline))

/* One step of the rolling hash: append data[i], drop data[i - w], reduce. */
#define ROLL(g, i) ((((g) << 8) | data[i]) ^ out[data[(i) - w]] ^ mod[(g) >> shift])

/* g for the window data[p - w .. p), from scratch. */
KERNEL uint64_t fill_window(const uint64_t *mod, uint64_t magic, const uint8_t *data, size_t p, size_t w,
                            unsigned shift)
{
  uint64_t g = magic; /* fingerprint 0 */
  for (size_t i = p - w; i < p; i++) g = ((g << 8) | data[i]) ^ mod[g >> shift];
  return g;
}

/* First boundary among window ends p .. p + n - 1 (each p >= window), or 0 if none. */
KERNEL size_t scan_one_k(const rabin_chunker *c, const uint8_t *data, size_t p, size_t n, size_t w,
                         unsigned shift, uint64_t mask)
{
  const uint64_t *mod = c->mod_table, *out = c->out_table;
  uint64_t g = fill_window(mod, c->magic, data, p, w, shift);
  if ((g & mask) == 0) return p;
  for (size_t i = p; i < p + n - 1; i++) {
    g = ROLL(g, i);
    if ((g & mask) == 0) return i + 1;
  }
  return 0;
}

/* Window ends checked per lane in one round of scan_four. */
#define LANE 512

/* First boundary among window ends p .. p + 4*LANE - 1, or 0 if none. The fingerprint at a
 * position depends only on its window, so the range can be split into four lanes hashed in one
 * loop: four independent dependency chains keep the CPU busy where one chain would wait on each
 * table load. Each lane fills its own window first. */
KERNEL size_t scan_four_k(const rabin_chunker *c, const uint8_t *data, size_t p, size_t w, unsigned shift,
                          uint64_t mask)
{
  const uint64_t *mod = c->mod_table, *out = c->out_table;
  size_t hit[4] = {0, 0, 0, 0};
  uint64_t g0 = c->magic, g1 = g0, g2 = g0, g3 = g0;
  for (size_t i = p - w; i < p; i++) {
    g0 = ((g0 << 8) | data[i]) ^ mod[g0 >> shift];
    g1 = ((g1 << 8) | data[i + LANE]) ^ mod[g1 >> shift];
    g2 = ((g2 << 8) | data[i + 2 * LANE]) ^ mod[g2 >> shift];
    g3 = ((g3 << 8) | data[i + 3 * LANE]) ^ mod[g3 >> shift];
  }
  /* Lane k's window ends at e + k*LANE. Masked values are below 2^31, so x - 1 has its sign
   * bit set exactly when x == 0: one OR finds a boundary in any lane. */
  for (size_t e = p;; e++) {
    int64_t z = ((int64_t)(g0 & mask) - 1) | ((int64_t)(g1 & mask) - 1) | ((int64_t)(g2 & mask) - 1) |
                ((int64_t)(g3 & mask) - 1);
    if (__builtin_expect(z < 0, 0)) {
      if ((g0 & mask) == 0) return e;
      if ((g1 & mask) == 0 && !hit[1]) hit[1] = e + LANE;
      if ((g2 & mask) == 0 && !hit[2]) hit[2] = e + 2 * LANE;
      if ((g3 & mask) == 0 && !hit[3]) hit[3] = e + 3 * LANE;
    }
    if (e == p + LANE - 1) break;
    g0 = ROLL(g0, e);
    g1 = ROLL(g1, e + LANE);
    g2 = ROLL(g2, e + 2 * LANE);
    g3 = ROLL(g3, e + 3 * LANE);
  }
  for (int k = 1; k < 4; k++)
    if (hit[k]) return hit[k];
  return 0;
}

/* Scan window ends [p, last] for the first boundary; 0 if none. */
KERNEL size_t scan_k(const rabin_chunker *c, const uint8_t *data, size_t p, size_t last, size_t w,
                     unsigned shift, uint64_t mask)
{
  for (; last + 1 - p >= 4 * LANE; p += 4 * LANE) {
    size_t hit = scan_four_k(c, data, p, w, shift, mask);
    if (hit) return hit;
  }
  return p <= last ? scan_one_k(c, data, p, last + 1 - p, w, shift, mask) : 0;
}

static size_t scan_lbfs(const rabin_chunker *c, const uint8_t *data, size_t p, size_t last)
{
  return scan_k(c, data, p, last, 48, 45, 0x1fff);
}

static size_t scan_generic(const rabin_chunker *c, const uint8_t *data, size_t p, size_t last)
{
  return scan_k(c, data, p, last, c->window, c->top_shift, c->mask);
}

/* Length of the chunk starting at data[0] with `avail` bytes available; -1 = need more bytes.
 * Only window ends from min_size on are examined and each window is hashed from its own bytes,
 * so the result depends on nothing before data[0]. */
static inline int64_t next_cut(const rabin_chunker *c, const uint8_t *data, size_t avail, bool final)
{
  const size_t min = c->min_size, max = c->max_size;
  if (avail < min) return final ? (int64_t)avail : -1;
  const size_t last = avail < max ? avail : max; /* last window end to examine */
  size_t hit = c->lbfs_shape ? scan_lbfs(c, data, min, last) : scan_generic(c, data, min, last);
  if (hit) return (int64_t)hit;
  if (avail >= max) return (int64_t)max;
  return final ? (int64_t)avail : -1;
}

static bool get_chunker(napi_env env, napi_value v, rabin_chunker **out);

int64_t slinky_rabin_next_cut(const rabin_chunker *c, const uint8_t *data, size_t avail, bool final)
{
  return next_cut(c, data, avail, final);
}

size_t slinky_rabin_max_size(const rabin_chunker *c)
{
  return c->max_size;
}

bool slinky_get_chunker(napi_env env, napi_value v, rabin_chunker **out)
{
  return get_chunker(env, v, out);
}

static bool get_chunker(napi_env env, napi_value v, rabin_chunker **out)
{
  bool ok = false;
  if (napi_check_object_type_tag(env, v, &RABIN_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, (void **)out) != napi_ok) {
    napi_throw_type_error(env, SLINKY_ERR_ARG, "not a chunker handle from rabinCreate");
    return false;
  }
  return true;
}

/* Common argument parsing: (handle, data, start, end, isFinal). */
static bool cut_args(napi_env env, napi_callback_info info, rabin_chunker **c, const uint8_t **data,
                     size_t *start, size_t *end, bool *final)
{
  napi_value argv[5];
  if (!slinky_get_args(env, info, 5, argv, "expected (handle, data, start, end, isFinal)")) return false;
  uint8_t *bytes;
  size_t len;
  if (!get_chunker(env, argv[0], c)) return false;
  if (!slinky_get_bytes(env, argv[1], "data", &bytes, &len)) return false;
  if (!slinky_get_index(env, argv[3], "end", len, end)) return false;
  if (!slinky_get_index(env, argv[2], "start", *end, start)) return false;
  if (napi_get_value_bool(env, argv[4], final) != napi_ok) {
    napi_throw_type_error(env, SLINKY_ERR_ARG, "isFinal must be a boolean");
    return false;
  }
  *data = bytes;
  return true;
}

/* rabinNextCut(handle, data, start, end, isFinal) -> chunk length or -1 */
static napi_value rabin_next_cut(napi_env env, napi_callback_info info)
{
  rabin_chunker *c;
  const uint8_t *data;
  size_t start, end;
  bool final;
  if (!cut_args(env, info, &c, &data, &start, &end, &final)) return NULL;
  napi_value result;
  NAPI_OK(env, napi_create_int64(env, next_cut(c, data + start, end - start, final), &result));
  return result;
}

/* rabinCuts(handle, data, start, end, isFinal) -> number[] of absolute exclusive chunk ends.
 * Without isFinal the bytes after the last returned cut are an incomplete chunk. One call per
 * buffer keeps the N-API crossing out of the per-chunk cost. */
static napi_value rabin_cuts(napi_env env, napi_callback_info info)
{
  rabin_chunker *c;
  const uint8_t *data;
  size_t start, end;
  bool final;
  if (!cut_args(env, info, &c, &data, &start, &end, &final)) return NULL;
  napi_value arr;
  NAPI_OK(env, napi_create_array(env, &arr));
  uint32_t n = 0;
  size_t pos = start;
  while (pos < end) {
    int64_t len = next_cut(c, data + pos, end - pos, final);
    if (len <= 0) break;
    pos += (size_t)len;
    napi_value v;
    NAPI_OK(env, napi_create_double(env, (double)pos, &v));
    NAPI_OK(env, napi_set_element(env, arr, n++, v));
  }
  return arr;
}

napi_status slinky_init_rabin(napi_env env, napi_value exports)
{
  napi_property_descriptor props[] = {
      {"rabinCreate", NULL, rabin_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rabinNextCut", NULL, rabin_next_cut, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rabinCuts", NULL, rabin_cuts, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
