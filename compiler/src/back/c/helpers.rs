//! The C helper functions generated code calls: KIR's semantics that plain C operators
//! do not give (wrapping integer arithmetic, division by zero = 0, shift ranges,
//! saturating casts, NaN-propagating min/max, f16/bf16 conversion, and `sqrt`, `floor`,
//! `fmod` ... without libm, since the output must link on a bare MCU).
//!
//! Only the helper groups a program uses are emitted, in the order of [`HELPERS`],
//! which lists dependencies first. Helpers are declared `EC_FN` (`static`, marked unused
//! for GCC/Clang) because a group may hold functions the program does not call.

use std::collections::BTreeSet;

/// One helper: its name, the helpers its body calls, and its C definition.
pub struct Helper {
    pub name: &'static str,
    pub deps: &'static [&'static str],
    pub code: &'static str,
}

/// Every helper, dependencies before their users.
pub const HELPERS: &[Helper] = &[
    Helper {
        name: "ec_bits",
        deps: &[],
        code: "typedef union { float f; uint32_t u; } ec_f32_u;\n\
typedef union { double f; uint64_t u; } ec_f64_u;\n\
EC_FN uint32_t ec_f32_to_bits(float x) { ec_f32_u v; v.f = x; return v.u; }\n\
EC_FN float ec_f32_from_bits(uint32_t x) { ec_f32_u v; v.u = x; return v.f; }\n\
EC_FN uint64_t ec_f64_to_bits(double x) { ec_f64_u v; v.f = x; return v.u; }\n\
EC_FN double ec_f64_from_bits(uint64_t x) { ec_f64_u v; v.u = x; return v.f; }\n",
    },
    Helper {
        name: "ec_rd",
        deps: &[],
        code: "/* Little-endian reads of the blob header, byte by byte (no alignment assumed). */\n\
EC_FN uint32_t ec_rd_u32(const unsigned char *p)\n\
{\n    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;\n}\n\
EC_FN uint64_t ec_rd_u64(const unsigned char *p)\n\
{\n    return (uint64_t)ec_rd_u32(p) | (uint64_t)ec_rd_u32(p + 4) << 32;\n}\n",
    },
    Helper {
        name: "ec_dot2",
        deps: &[],
        code: "/* KIR's Dot2: lo16(a) * lo16(b) + hi16(a) * hi16(b) (+ acc), wrapping: SMUAD/SMLAD with\n\
 * Arm's DSP extension (Cortex-M4/M7/M33/M55), the same sums in portable C elsewhere. */\n\
#if defined(__ARM_FEATURE_DSP)\n\
#include <arm_acle.h>\n\
EC_FN int32_t ec_smuad(int32_t a, int32_t b) { return __smuad(a, b); }\n\
EC_FN int32_t ec_smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }\n\
#else\n\
EC_FN int32_t ec_smuad(int32_t a, int32_t b)\n\
{\n\
    int32_t al = (int16_t)(uint16_t)(uint32_t)a, ah = (int16_t)(uint16_t)((uint32_t)a >> 16);\n\
    int32_t bl = (int16_t)(uint16_t)(uint32_t)b, bh = (int16_t)(uint16_t)((uint32_t)b >> 16);\n\
    return (int32_t)((uint32_t)(al * bl) + (uint32_t)(ah * bh));\n\
}\n\
EC_FN int32_t ec_smlad(int32_t a, int32_t b, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)ec_smuad(a, b)); }\n\
#endif\n",
    },
    Helper {
        name: "ec_sxtb16",
        deps: &[],
        code: "/* KIR's Sxtb16: bytes 0 and 2 sign-extended into the int16 halves (SXTB16 with Arm's DSP\n\
 * extension; ec_sxtb16_ror8(a) = Sxtb16(a >>> 8), bytes 1 and 3, is SXTB16's rotated form, which\n\
 * GCC 12's ACLE has no intrinsic for). Portable C elsewhere. */\n\
#if defined(__ARM_FEATURE_DSP)\n\
#include <arm_acle.h>\n\
EC_FN int32_t ec_sxtb16(int32_t a) { return __sxtb16(a); }\n\
EC_FN int32_t ec_sxtb16_ror8(int32_t a) { int32_t r; __asm__(\"sxtb16 %0, %1, ror #8\" : \"=r\"(r) : \"r\"(a)); return r; }\n\
#else\n\
EC_FN int32_t ec_sxtb16(int32_t a)\n\
{\n\
    uint32_t u = (uint32_t)a;\n\
    uint32_t lo = (uint32_t)(int32_t)(int8_t)(uint8_t)(u & 0xFFu) & 0xFFFFu;\n\
    uint32_t hi = (uint32_t)(int32_t)(int8_t)(uint8_t)((u >> 16) & 0xFFu) << 16;\n\
    return (int32_t)(lo | hi);\n\
}\n\
EC_FN int32_t ec_sxtb16_ror8(int32_t a) { return ec_sxtb16((int32_t)((uint32_t)a >> 8)); }\n\
#endif\n",
    },
    Helper {
        name: "ec_i32",
        deps: &[],
        code: "/* i32 arithmetic wraps (done in uint32_t); x / 0 and x % 0 give 0. */\n\
EC_FN int32_t ec_add_i32(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }\n\
EC_FN int32_t ec_sub_i32(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }\n\
EC_FN int32_t ec_mul_i32(int32_t a, int32_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }\n\
EC_FN int32_t ec_neg_i32(int32_t a) { return (int32_t)(0u - (uint32_t)a); }\n\
EC_FN int32_t ec_abs_i32(int32_t a) { return a < 0 ? ec_neg_i32(a) : a; }\n\
EC_FN int32_t ec_div_i32(int32_t a, int32_t b) { return b == 0 ? 0 : b == -1 ? ec_neg_i32(a) : a / b; }\n\
EC_FN int32_t ec_rem_i32(int32_t a, int32_t b) { return (b == 0 || b == -1) ? 0 : a % b; }\n\
EC_FN int32_t ec_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }\n\
EC_FN int32_t ec_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }\n\
EC_FN int32_t ec_shl_i32(int32_t a, int32_t b) { return (b < 0 || b >= 32) ? 0 : (int32_t)((uint32_t)a << b); }\n\
#if defined(__GNUC__)\n\
/* GCC and Clang define >> of a negative int as the arithmetic shift (GCC manual, C implementation:\n\
 * integers): one ASR, where the portable form below compiles to a test and two branches. */\n\
EC_FN int32_t ec_shr_i32(int32_t a, int32_t b) { return (b < 0 || b >= 32) ? (a < 0 ? -1 : 0) : a >> b; }\n\
#else\n\
EC_FN int32_t ec_shr_i32(int32_t a, int32_t b)\n\
{\n    if (b < 0 || b >= 32) return a < 0 ? -1 : 0;\n    return a < 0 ? (int32_t)~(~(uint32_t)a >> b) : (int32_t)((uint32_t)a >> b);\n}\n\
#endif\n\
EC_FN int32_t ec_ushr_i32(int32_t a, int32_t b) { return (b < 0 || b >= 32) ? 0 : (int32_t)((uint32_t)a >> b); }\n",
    },
    Helper {
        name: "ec_ix32",
        deps: &[],
        code: "/* Index arithmetic on 32-bit targets is int32_t and wraps like i32: add, sub and mul\n\
 * are inlined here, being on every address; the other Index ops call the ec_i32 helpers.\n\
 * I64 -> Index saturates, so an out-of-range index from runtime data stays out of range. */\n\
EC_INL int32_t ec_add_ix(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }\n\
EC_INL int32_t ec_sub_ix(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }\n\
EC_INL int32_t ec_mul_ix(int32_t a, int32_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }\n\
EC_INL int32_t ec_sat_ix(int64_t a) { return a < INT32_MIN ? INT32_MIN : a > INT32_MAX ? INT32_MAX : (int32_t)a; }\n",
    },
    Helper {
        name: "ec_i64",
        deps: &[],
        code: "/* i64 (and 64-bit index) arithmetic wraps (done in uint64_t); x / 0 and x % 0 give 0. */\n\
EC_INL int64_t ec_add_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }\n\
EC_INL int64_t ec_sub_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }\n\
EC_INL int64_t ec_mul_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }\n\
EC_FN int64_t ec_neg_i64(int64_t a) { return (int64_t)(0u - (uint64_t)a); }\n\
EC_FN int64_t ec_abs_i64(int64_t a) { return a < 0 ? ec_neg_i64(a) : a; }\n\
EC_FN int64_t ec_div_i64(int64_t a, int64_t b) { return b == 0 ? 0 : b == -1 ? ec_neg_i64(a) : a / b; }\n\
EC_FN int64_t ec_rem_i64(int64_t a, int64_t b) { return (b == 0 || b == -1) ? 0 : a % b; }\n\
EC_FN int64_t ec_min_i64(int64_t a, int64_t b) { return a < b ? a : b; }\n\
EC_FN int64_t ec_max_i64(int64_t a, int64_t b) { return a > b ? a : b; }\n\
EC_FN int64_t ec_shl_i64(int64_t a, int64_t b) { return (b < 0 || b >= 64) ? 0 : (int64_t)((uint64_t)a << b); }\n\
EC_FN int64_t ec_shr_i64(int64_t a, int64_t b)\n\
{\n    if (b < 0 || b >= 64) return a < 0 ? -1 : 0;\n    return a < 0 ? (int64_t)~(~(uint64_t)a >> b) : (int64_t)((uint64_t)a >> b);\n}\n\
EC_FN int64_t ec_ushr_i64(int64_t a, int64_t b) { return (b < 0 || b >= 64) ? 0 : (int64_t)((uint64_t)a >> b); }\n\
EC_FN int32_t ec_wrap_i32(int64_t a) { return (int32_t)(uint32_t)(uint64_t)a; }\n",
    },
    Helper {
        name: "ec_fcmp",
        deps: &[],
        code: "/* Min/Max propagate NaN (ONNX semantics, unlike IEEE minNum). */\n\
EC_FN float ec_min_f32(float a, float b) { return (a != a || b != b) ? a + b : (a < b ? a : b); }\n\
EC_FN float ec_max_f32(float a, float b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }\n\
EC_FN double ec_min_f64(double a, double b) { return (a != a || b != b) ? a + b : (a < b ? a : b); }\n\
EC_FN double ec_max_f64(double a, double b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }\n",
    },
    Helper {
        name: "ec_f2i",
        deps: &[],
        code: "/* Float -> int conversions saturate and map NaN to 0 (C leaves both undefined). */\n\
EC_FN int32_t ec_f2i32(double x)\n\
{\n    if (x != x) return 0;\n    if (x <= -2147483648.0) return INT32_MIN;\n    if (x >= 2147483647.0) return INT32_MAX;\n    return (int32_t)x;\n}\n\
EC_FN int64_t ec_f2i64(double x)\n\
{\n    if (x != x) return 0;\n    if (x <= -9223372036854775808.0) return INT64_MIN;\n    if (x >= 9223372036854775808.0) return INT64_MAX;\n    return (int64_t)x;\n}\n",
    },
    Helper {
        name: "ec_f2if",
        deps: &[],
        code: "/* The same from f32 without going through double. */\n\
EC_FN int32_t ec_f2i32f(float x)\n\
{\n    if (x != x) return 0;\n    if (x <= -2147483648.0f) return INT32_MIN;\n    if (x >= 2147483648.0f) return INT32_MAX;\n    return (int32_t)x;\n}\n\
EC_FN int64_t ec_f2i64f(float x)\n\
{\n    if (x != x) return 0;\n    if (x <= -9223372036854775808.0f) return INT64_MIN;\n    if (x >= 9223372036854775808.0f) return INT64_MAX;\n    return (int64_t)x;\n}\n",
    },
    Helper {
        name: "ec_round",
        deps: &["ec_bits"],
        code: "/* floor, ceil, trunc and round-half-even without libm: doubles of magnitude >= 2^52\n\
 * (and NaN, infinities) are already integers; below, (int64_t) truncates exactly. The\n\
 * sign is copied back so that -0.5 truncates to -0.0 as in IEEE. */\n\
EC_FN double ec_trunc(double x)\n\
{\n    double t;\n    if (!(x > -4503599627370496.0 && x < 4503599627370496.0)) return x;\n    t = (double)(int64_t)x;\n    return ec_f64_from_bits(ec_f64_to_bits(t) | (ec_f64_to_bits(x) & UINT64_C(0x8000000000000000)));\n}\n\
EC_FN double ec_floor(double x) { double t = ec_trunc(x); return t > x ? t - 1.0 : t; }\n\
EC_FN double ec_ceil(double x) { double t = ec_trunc(x); return t < x ? t + 1.0 : t; }\n\
EC_FN double ec_round_even(double x)\n\
{\n    double t = ec_trunc(x), d = x - t, s = x < 0.0 ? -1.0 : 1.0;\n    if (!(x > -4503599627370496.0 && x < 4503599627370496.0)) return x;\n    if (d < 0.0) d = -d;\n    if (d > 0.5 || (d == 0.5 && ((uint64_t)(t < 0.0 ? -t : t) & 1u))) return t + s;\n    return t;\n}\n",
    },
    Helper {
        name: "ec_sqrt",
        deps: &["ec_bits"],
        code: "/* Correctly rounded sqrt without libm: the bit-by-bit integer square root of the\n\
 * significand (fdlibm's method, on 64-bit words). An f32 sqrt is this rounded to f32,\n\
 * which is also correctly rounded (53 >= 2 * 24 + 2). */\n\
EC_FN double ec_sqrt(double x)\n\
{\n    uint64_t ix = ec_f64_to_bits(x), q = 0, s = 0, r, t;\n    int e = (int)(ix >> 52 & 0x7ff);\n\
    if (x != x || x == 0.0) return x;\n    if (x < 0.0) return (x - x) / (x - x);\n    if (e == 0x7ff) return x;\n\
    ix &= UINT64_C(0x000fffffffffffff);\n    if (e == 0) {\n        e = 1;\n        while (!(ix & UINT64_C(0x0010000000000000))) { ix <<= 1; e--; }\n    } else {\n        ix |= UINT64_C(0x0010000000000000);\n    }\n\
    e -= 1023;\n    if (e & 1) ix <<= 1;\n    e = (e - (e & 1)) / 2;\n    ix <<= 1;\n    r = UINT64_C(0x0020000000000000);\n\
    while (r != 0) {\n        t = s + r;\n        if (t <= ix) { s = t + r; ix -= t; q += r; }\n        ix <<= 1;\n        r >>= 1;\n    }\n\
    if (ix != 0) q += q & 1;\n    q >>= 1;\n    return ec_f64_from_bits((q - UINT64_C(0x0010000000000000)) + ((uint64_t)(e + 1023) << 52));\n}\n",
    },
    Helper {
        name: "ec_roundf",
        deps: &["ec_bits"],
        code: "/* The same in f32 arithmetic (no double: single-precision FPUs such as the\n\
 * Cortex-M4's would call soft-float routines): floats of magnitude >= 2^23 are integers. */\n\
EC_FN float ec_truncf(float x)\n\
{\n    float t;\n    if (!(x > -8388608.0f && x < 8388608.0f)) return x;\n    t = (float)(int32_t)x;\n    return ec_f32_from_bits(ec_f32_to_bits(t) | (ec_f32_to_bits(x) & 0x80000000u));\n}\n\
EC_FN float ec_floorf(float x) { float t = ec_truncf(x); return t > x ? t - 1.0f : t; }\n\
EC_FN float ec_ceilf(float x) { float t = ec_truncf(x); return t < x ? t + 1.0f : t; }\n\
EC_FN float ec_round_evenf(float x)\n\
{\n\
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ == 0\n\
    /* |x| < 2^22: x + 1.5 * 2^23 lies in (2^23, 2^24), whose spacing is 1, so the FPU's\n\
     * round-to-nearest-even does the rounding in one add (a third of the instructions of the\n\
     * form below: QuantizeLinear spends its time here); the sign is x's (-0.3 gives -0). */\n\
    if (x > -4194304.0f && x < 4194304.0f) {\n\
        float r = (x + 12582912.0f) - 12582912.0f;\n\
        return ec_f32_from_bits(ec_f32_to_bits(r) | (ec_f32_to_bits(x) & 0x80000000u));\n\
    }\n\
#endif\n\
    {\n    float t = ec_truncf(x), d = x - t, s = x < 0.0f ? -1.0f : 1.0f;\n    if (!(x > -8388608.0f && x < 8388608.0f)) return x;\n    if (d < 0.0f) d = -d;\n    if (d > 0.5f || (d == 0.5f && ((uint32_t)(t < 0.0f ? -t : t) & 1u))) return t + s;\n    return t;\n    }\n}\n",
    },
    Helper {
        name: "ec_sqrtf",
        deps: &["ec_bits"],
        code: "/* Correctly rounded f32 sqrt without double: the FPU's vsqrt.f32 on Arm cores with a\n\
 * single-precision FPU (IEEE correctly rounded), else the bit-by-bit integer square\n\
 * root on 32-bit words (fdlibm's e_sqrtf). */\n\
EC_FN float ec_sqrtf(float x)\n\
{\n#if defined(__GNUC__) && defined(__arm__) && defined(__ARM_FP) && (__ARM_FP & 4)\n    float r;\n    __asm__(\"vsqrt.f32 %0, %1\" : \"=t\"(r) : \"t\"(x));\n    return r;\n#else\n\
    uint32_t ix = ec_f32_to_bits(x), q = 0, s = 0, r, t;\n    int e = (int)(ix >> 23 & 0xff);\n\
    if (x != x || x == 0.0f) return x;\n    if (x < 0.0f) return (x - x) / (x - x);\n    if (e == 0xff) return x;\n\
    ix &= 0x007fffffu;\n    if (e == 0) {\n        e = 1;\n        while (!(ix & 0x00800000u)) { ix <<= 1; e--; }\n    } else {\n        ix |= 0x00800000u;\n    }\n\
    e -= 127;\n    if (e & 1) ix <<= 1;\n    e = (e - (e & 1)) / 2;\n    ix <<= 1;\n    r = 0x01000000u;\n\
    while (r != 0) {\n        t = s + r;\n        if (t <= ix) { s = t + r; ix -= t; q += r; }\n        ix <<= 1;\n        r >>= 1;\n    }\n\
    if (ix != 0) q += q & 1;\n    q >>= 1;\n    return ec_f32_from_bits((q - 0x00800000u) + ((uint32_t)(e + 127) << 23));\n#endif\n}\n",
    },
    Helper {
        name: "ec_fmodf",
        deps: &["ec_bits"],
        code: "/* fmod in f32 without double (exact; musl's fmodf). */\n\
EC_FN float ec_fmodf(float x, float y)\n\
{\n    uint32_t ux = ec_f32_to_bits(x), uy = ec_f32_to_bits(y), i, sx = ux & 0x80000000u;\n    int ex = (int)(ux >> 23 & 0xff), ey = (int)(uy >> 23 & 0xff);\n\
    if ((uy << 1) == 0 || y != y || ex == 0xff) return (x * y) / (x * y);\n\
    if ((ux << 1) <= (uy << 1)) return (ux << 1) == (uy << 1) ? 0.0f * x : x;\n\
    if (ex == 0) {\n        for (i = ux << 9; (i >> 31) == 0; ex--, i <<= 1) {}\n        ux <<= -ex + 1;\n    } else {\n        ux &= 0x007fffffu;\n        ux |= 0x00800000u;\n    }\n\
    if (ey == 0) {\n        for (i = uy << 9; (i >> 31) == 0; ey--, i <<= 1) {}\n        uy <<= -ey + 1;\n    } else {\n        uy &= 0x007fffffu;\n        uy |= 0x00800000u;\n    }\n\
    for (; ex > ey; ex--) {\n        i = ux - uy;\n        if ((i >> 31) == 0) {\n            if (i == 0) return 0.0f * x;\n            ux = i;\n        }\n        ux <<= 1;\n    }\n\
    i = ux - uy;\n    if ((i >> 31) == 0) {\n        if (i == 0) return 0.0f * x;\n        ux = i;\n    }\n    for (; (ux >> 23) == 0; ux <<= 1, ex--) {}\n\
    if (ex > 0) {\n        ux -= 0x00800000u;\n        ux |= (uint32_t)ex << 23;\n    } else {\n        ux >>= -ex + 1;\n    }\n    return ec_f32_from_bits(ux | sx);\n}\n",
    },
    Helper {
        name: "ec_fmod",
        deps: &["ec_bits"],
        code: "/* fmod without libm (exact; musl's algorithm). f32 operands are exact in double and\n\
 * their remainder is representable in f32. */\n\
EC_FN double ec_fmod(double x, double y)\n\
{\n    uint64_t ux = ec_f64_to_bits(x), uy = ec_f64_to_bits(y), i;\n    int ex = (int)(ux >> 52 & 0x7ff), ey = (int)(uy >> 52 & 0x7ff);\n    uint64_t sx = ux >> 63;\n\
    if ((uy << 1) == 0 || y != y || ex == 0x7ff) return (x * y) / (x * y);\n\
    if ((ux << 1) <= (uy << 1)) return (ux << 1) == (uy << 1) ? 0.0 * x : x;\n\
    if (ex == 0) {\n        for (i = ux << 12; (i >> 63) == 0; ex--, i <<= 1) {}\n        ux <<= -ex + 1;\n    } else {\n        ux &= UINT64_C(0x000fffffffffffff);\n        ux |= UINT64_C(0x0010000000000000);\n    }\n\
    if (ey == 0) {\n        for (i = uy << 12; (i >> 63) == 0; ey--, i <<= 1) {}\n        uy <<= -ey + 1;\n    } else {\n        uy &= UINT64_C(0x000fffffffffffff);\n        uy |= UINT64_C(0x0010000000000000);\n    }\n\
    for (; ex > ey; ex--) {\n        i = ux - uy;\n        if ((i >> 63) == 0) {\n            if (i == 0) return 0.0 * x;\n            ux = i;\n        }\n        ux <<= 1;\n    }\n\
    i = ux - uy;\n    if ((i >> 63) == 0) {\n        if (i == 0) return 0.0 * x;\n        ux = i;\n    }\n    for (; (ux >> 52) == 0; ux <<= 1, ex--) {}\n\
    if (ex > 0) {\n        ux -= UINT64_C(0x0010000000000000);\n        ux |= (uint64_t)ex << 52;\n    } else {\n        ux >>= -ex + 1;\n    }\n    return ec_f64_from_bits(ux | sx << 63);\n}\n",
    },
    Helper {
        name: "ec_fma",
        deps: &[],
        code: "/* Fused multiply-add without libm. With hardware FMA (__FP_FAST_FMA*) the builtin is\n\
 * one instruction and exact. Otherwise: f32 through double (the product is exact, only\n\
 * the sum rounds before the final rounding to f32); f64 by Dekker's exact product and\n\
 * Knuth's two-sum, exact whenever the result is (e.g. fma(a, b, -round(a*b)), the\n\
 * rounding error, which the math expansions rely on) and within an ulp otherwise.\n\
 * Requires no contraction of a*b+c by the compiler (the default in ISO C modes). */\n\
EC_FN float ec_fma_f32(float a, float b, float c)\n\
{\n#if defined(__FP_FAST_FMAF) && defined(__GNUC__)\n    return __builtin_fmaf(a, b, c);\n#else\n    return (float)((double)a * (double)b + (double)c);\n#endif\n}\n\
EC_FN double ec_fma_f64(double a, double b, double c)\n\
{\n#if defined(__FP_FAST_FMA) && defined(__GNUC__)\n    return __builtin_fma(a, b, c);\n#else\n\
    const double split = 134217729.0; /* 2^27 + 1 */\n    double p = a * b, t, ah, al, bh, bl, e, s, z, err;\n\
    if (!(p - p == 0.0) || !(c - c == 0.0) || !(a < 1e300 && a > -1e300 && b < 1e300 && b > -1e300)) return p + c;\n\
    t = split * a; ah = t - (t - a); al = a - ah;\n    t = split * b; bh = t - (t - b); bl = b - bh;\n\
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;\n    s = p + c; z = s - p; err = (p - (s - z)) + (c - z);\n\
    return s + (err + e);\n#endif\n}\n",
    },
    Helper {
        name: "ec_abs_f",
        deps: &["ec_bits"],
        code: "EC_FN float ec_abs_f32(float x) { return ec_f32_from_bits(ec_f32_to_bits(x) & 0x7fffffffu); }\n\
EC_FN double ec_abs_f64(double x) { return ec_f64_from_bits(ec_f64_to_bits(x) & UINT64_C(0x7fffffffffffffff)); }\n",
    },
    Helper {
        name: "ec_half",
        deps: &["ec_bits"],
        code: "/* IEEE half <-> float by bit manipulation; narrowing rounds to nearest even. */\n\
EC_FN float ec_f16_to_f32(uint16_t h)\n\
{\n    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = h & 0x7c00u, man = h & 0x03ffu;\n\
    if (exp == 0x7c00u) return ec_f32_from_bits(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0u));\n\
    if (exp == 0) {\n        float v = (float)man * 5.9604644775390625e-8f;\n        return sign ? -v : v;\n    }\n\
    return ec_f32_from_bits(sign | (((exp >> 10) + 112u) << 23) | (man << 13));\n}\n\
EC_FN uint16_t ec_f32_to_f16(float f)\n\
{\n    uint32_t x = ec_f32_to_bits(f), sign = (x & 0x80000000u) >> 16, exp = x & 0x7f800000u, man = x & 0x007fffffu;\n    int hexp;\n\
    if (exp == 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (man ? 0x0200u : 0u) | (man >> 13));\n\
    hexp = (int)(exp >> 23) - 127 + 15;\n    if (hexp >= 0x1f) return (uint16_t)(sign | 0x7c00u);\n\
    if (hexp <= 0) {\n        uint32_t hman, round;\n        if (14 - hexp > 24) return (uint16_t)sign;\n        man |= 0x00800000u;\n        hman = man >> (14 - hexp);\n        round = 1u << (13 - hexp);\n\
        if ((man & round) && (man & (3u * round - 1u))) hman++;\n        return (uint16_t)(sign | hman);\n    }\n\
    {\n        uint32_t h = sign | ((uint32_t)hexp << 10) | (man >> 13);\n        if ((man & 0x1000u) && (man & 0x2fffu)) h++;\n        return (uint16_t)h;\n    }\n}\n",
    },
    Helper {
        name: "ec_bf16",
        deps: &["ec_bits"],
        code: "/* bfloat16 <-> float: the top half of the bits; narrowing rounds to nearest even. */\n\
EC_FN float ec_bf16_to_f32(uint16_t h) { return ec_f32_from_bits((uint32_t)h << 16); }\n\
EC_FN uint16_t ec_f32_to_bf16(float f)\n\
{\n    uint32_t x = ec_f32_to_bits(f);\n    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u);\n\
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);\n}\n",
    },
];

/// The helpers `used` names, with their dependencies, in definition order.
pub fn emit(used: &BTreeSet<&'static str>, out: &mut String) {
    let mut need: BTreeSet<&str> = used.clone();
    for h in HELPERS.iter().rev() {
        if need.contains(h.name) {
            need.extend(h.deps.iter().copied());
        }
    }
    for h in HELPERS {
        if need.contains(h.name) {
            out.push_str(h.code);
            out.push('\n');
        }
    }
}
