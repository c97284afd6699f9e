/* The digits demo in plain C: four 8x8 digits from the VAE decoder compiled by edgec
 * (vae.h/vae.c, weights embedded in flash), as ASCII art over semihosting, then the
 * flash and RAM the image uses. `zK:`/`imageK:` lines give each latent vector and
 * image as float32 bit patterns (hex) for scripts/examples.sh to check with ONNX
 * Runtime. No libc: the model code needs none, and printing is done by hand. */
#include <stdint.h>
#include <string.h>

#include "vae.h"

long semihost(long op, void *arg);
void semihost_exit(int code);

extern const unsigned char __flash_used[], __ram_used[];

/* The arena: static, of the exact size and alignment the header gives. */
static unsigned char arena[vae_ARENA_SIZE] __attribute__((aligned(vae_ARENA_ALIGN)));

void semihost_exit(int code)
{
    uint32_t block[2] = {0x20026, (uint32_t)code}; /* ADP_Stopped_ApplicationExit */
    semihost(0x20, block);                         /* SYS_EXIT_EXTENDED */
}

static void puts_(const char *s) { semihost(0x04, (void *)s); } /* SYS_WRITE0 */

static void put_uint(uint32_t v)
{
    char b[12], *p = b + sizeof b;
    *--p = 0;
    do *--p = (char)('0' + v % 10); while (v /= 10);
    puts_(p);
}

static void put_hex(float f)
{
    uint32_t u;
    char b[10];
    memcpy(&u, &f, 4);
    b[0] = ' ';
    for (int i = 0; i < 8; i++) b[1 + i] = "0123456789abcdef"[(u >> (28 - 4 * i)) & 15];
    b[9] = 0;
    puts_(b);
}

/* Approximately N(0, 1) without libm: the sum of 12 uniforms minus 6. */
static uint64_t rng = 0x2545f4914f6cdd1dULL;
static float normal(void)
{
    float s = 0;
    for (int i = 0; i < 12; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        s += (float)(rng >> 40) / (float)(1 << 24);
    }
    return s - 6.0f;
}

void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}

int main(void)
{
    static const char shade[] = " .:-=+*#%@";
    float z[8], image[64];
    const void *inputs[1] = {z};
    void *outputs[1] = {image};
    puts_("edgec digits demo in C (cortex-m7, mps2-an500)\n");
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 8; i++) z[i] = normal();
        int rc = vae_run(NULL, arena, inputs, outputs);
        if (rc != 0) {
            puts_("vae_run failed: ");
            put_uint((uint32_t)rc);
            puts_("\n");
            return 1;
        }
        char zk[] = "z0:", ik[] = "image0:";
        zk[1] = ik[5] = (char)('0' + k);
        puts_(zk);
        for (int i = 0; i < 8; i++) put_hex(z[i]);
        puts_("\n");
        puts_(ik);
        for (int i = 0; i < 64; i++) put_hex(image[i]);
        puts_("\n");
        for (int r = 0; r < 8; r++) {
            char line[18];
            for (int c = 0; c < 8; c++) {
                int s = (int)(image[8 * r + c] * 10.0f);
                line[2 * c] = line[2 * c + 1] = shade[s < 0 ? 0 : s > 9 ? 9 : s];
            }
            line[16] = '\n';
            line[17] = 0;
            puts_(line);
        }
        puts_("----------------\n");
    }
    puts_("memory: flash ");
    put_uint((uint32_t)(uintptr_t)__flash_used);
    puts_(" B, ram ");
    put_uint((uint32_t)(uintptr_t)__ram_used);
    puts_(" B (arena ");
    put_uint(vae_ARENA_SIZE);
    puts_(" B, stack 32768 B)\n");
    return 0;
}
