/* board.c: the board-independent part of the test firmware: C start-up (copy .data,
 * clear .bss, call main, exit with its status), semihosting console and file I/O, a
 * LIFO bump heap, and the four mem* functions GCC may call even in freestanding code.
 * See README.md. */
#include <stdint.h>

#include "board.h"

/* Without this, GCC turns the loops of memset/memcpy below into calls to themselves. */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

/* From the linker script (sections.ld and the board's script). */
extern unsigned char __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern unsigned char __heap_start[], __heap_end[];

int main(void);
void board_start(void);
void board_fault(void);

enum {
    SYS_OPEN = 0x01,
    SYS_CLOSE = 0x02,
    SYS_WRITE0 = 0x04,
    SYS_WRITE = 0x05,
    SYS_READ = 0x06,
    SYS_FLEN = 0x0C,
    SYS_EXIT_EXTENDED = 0x20,
    ADP_STOPPED_APPLICATION_EXIT = 0x20026
};

void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    if (p < q) {
        while (n--) *p++ = *q++;
    } else {
        while (n--) p[n] = q[n];
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++) {
        if (*p != *q) return *p < *q ? -1 : 1;
    }
    return 0;
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

void board_puts(const char *s)
{
    board_semihost(SYS_WRITE0, (void *)(uintptr_t)s);
}

void board_exit(int code)
{
    long block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = code;
    board_semihost(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}

static long open_file(const char *name, long mode)
{
    long block[3];
    block[0] = (long)(uintptr_t)name;
    block[1] = mode;
    block[2] = (long)length(name);
    return board_semihost(SYS_OPEN, block);
}

static void close_file(long h)
{
    board_semihost(SYS_CLOSE, &h);
}

long board_file_size(const char *name)
{
    long h = open_file(name, 1 /* "rb" */), n;
    if (h < 0) return -1;
    n = board_semihost(SYS_FLEN, &h);
    close_file(h);
    return n;
}

int board_read_file(const char *name, void *p, size_t size)
{
    long block[3], h = open_file(name, 1 /* "rb" */), left;
    if (h < 0) return -1;
    block[0] = h;
    block[1] = (long)(uintptr_t)p;
    block[2] = (long)size;
    left = size ? board_semihost(SYS_READ, block) : 0; /* bytes not read */
    close_file(h);
    return left == 0 ? 0 : -1;
}

int board_write_file(const char *name, const void *p, size_t size)
{
    long block[3], h = open_file(name, 5 /* "wb" */), left;
    if (h < 0) return -1;
    block[0] = h;
    block[1] = (long)(uintptr_t)p;
    block[2] = (long)size;
    left = size ? board_semihost(SYS_WRITE, block) : 0; /* bytes not written */
    close_file(h);
    return left == 0 ? 0 : -1;
}

/* Each block starts with this header (16 bytes on 32-bit targets, so blocks stay
 * 16-byte aligned). */
struct block {
    struct block *prev;
    size_t size;
    size_t pad[2];
};

static unsigned char *heap_top;
static struct block *newest;

void *board_alloc(size_t size)
{
    struct block *b;
    size_t room = (size_t)(__heap_end - heap_top);
    size_t need = sizeof(struct block) + ((size + 15u) & ~(size_t)15u);
    if (size > room || need > room) {
        board_puts("board: out of heap memory\n");
        board_exit(3);
    }
    b = (struct block *)(void *)heap_top;
    b->prev = newest;
    b->size = need;
    newest = b;
    heap_top += need;
    memset(b + 1, 0, need - sizeof(struct block));
    return b + 1;
}

void board_free(void *p)
{
    struct block *b = (struct block *)p - 1;
    if (p && b == newest) {
        heap_top = (unsigned char *)b;
        newest = b->prev;
    }
}

/* Called by the reset code with a stack and (where present) the FPU enabled. */
void board_start(void)
{
    size_t n = (size_t)(__data_end - __data_start);
    memcpy(__data_start, __data_load, n);
    memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
    heap_top = (unsigned char *)(((uintptr_t)__heap_start + 15u) & ~(uintptr_t)15u);
    newest = NULL;
    board_exit(main());
}

/* Every fault or unexpected exception/trap ends here: report and stop, so a crash
 * is an exit status, not a hang until the timeout. */
void board_fault(void)
{
    board_puts("board: fault (an unexpected exception or trap)\n");
    board_exit(70);
}
