/*
 * edgec's instruction counter: a QEMU TCG plugin (API version 1, QEMU 7.2) that
 * counts guest instructions with inline per-instruction counters (no callback per
 * instruction, so it costs little and never perturbs the count).
 *
 * Arguments (`-plugin icount.so,key=value,...`; addresses in hex or decimal):
 *   lo=ADDR,hi=ADDR   a PC range [lo, hi): the model's own code (NAME_run and its
 *                     kernels, from `nm -S` of the linked binary); optional
 *   begin=ADDR,end=ADDR  the first instructions of the driver's markers
 *                     edgec_bench_begin/edgec_bench_end, called just before and just
 *                     after NAME_run: each begin..end span is one inference
 *   out=PATH          where to write the counts (default: stderr)
 *   ranges=PATH       a profile: a file of `LO HI` lines (hex PC ranges, one per
 *                     function of the model: NAME_run, each kernel, each helper)
 * Output, one line each: `span ALL RANGE` per begin..end span, then `total ALL RANGE`,
 * where ALL counts every instruction and RANGE only those in [lo, hi); with ranges=,
 * then `range K COUNT` per line K of the file (instructions executed in it, over the
 * whole run).
 *
 * Works the same under qemu-aarch64/qemu-riscv64 (user mode: run with `env -i` and a
 * fixed argv) and qemu-system-arm (add `-icount shift=0`): counts are then identical
 * run to run. Built by edgec with `cc -shared -fPIC` (emit/icount.rs).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later (it runs inside QEMU, against QEMU's API)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_SPANS 4096

static uint64_t all, in_range;  /* instructions executed: every one, those in [lo, hi) */
static uint64_t lo, hi = UINT64_MAX, begin = UINT64_MAX, end = UINT64_MAX;
static uint64_t start_all, start_range, spans[MAX_SPANS][2];
static int inside, n_spans;
static const char *out_path;
/* The profile's ranges, sorted by lo as the file gives them, and their counters. */
static uint64_t (*ranges)[2], *range_counts;
static int n_ranges;

static int load_ranges(const char *path)
{
    FILE *f = fopen(path, "r");
    unsigned long long a, b;
    int cap = 0;
    if (!f)
        return 1;
    while (fscanf(f, "%llx %llx", &a, &b) == 2) {
        if (n_ranges == cap) {
            cap = cap ? 2 * cap : 256;
            ranges = realloc(ranges, (size_t)cap * sizeof *ranges);
            if (!ranges)
                return 1;
        }
        ranges[n_ranges][0] = a;
        ranges[n_ranges][1] = b;
        n_ranges++;
    }
    fclose(f);
    range_counts = calloc((size_t)n_ranges + 1, sizeof *range_counts);
    return range_counts == NULL;
}

/* The range holding pc (binary search over ranges sorted by lo), or -1. */
static int range_of(uint64_t pc)
{
    int l = 0, h = n_ranges - 1;
    while (l <= h) {
        int m = (l + h) / 2;
        if (pc < ranges[m][0]) h = m - 1;
        else if (pc >= ranges[m][1]) l = m + 1;
        else return m;
    }
    return -1;
}

static void on_begin(unsigned int vcpu, void *udata)
{
    (void)vcpu; (void)udata;
    start_all = all; start_range = in_range; inside = 1;
}

static void on_end(unsigned int vcpu, void *udata)
{
    (void)vcpu; (void)udata;
    if (inside && n_spans < MAX_SPANS) {
        spans[n_spans][0] = all - start_all;
        spans[n_spans][1] = in_range - start_range;
        n_spans++;
    }
    inside = 0;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        /* Markers first, so both snapshots see the same counters' state. */
        if (pc == begin)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (pc == end)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &all, 1);
        if (pc >= lo && pc < hi)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &in_range, 1);
        if (n_ranges) {
            int r = range_of(pc);
            if (r >= 0)
                qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &range_counts[r], 1);
        }
    }
}

static void on_quit(qemu_plugin_id_t id, void *udata)
{
    FILE *f = out_path ? fopen(out_path, "w") : stderr;
    int k;
    (void)id; (void)udata;
    if (!f)
        return;
    for (k = 0; k < n_spans; k++)
        fprintf(f, "span %llu %llu\n", (unsigned long long)spans[k][0], (unsigned long long)spans[k][1]);
    fprintf(f, "total %llu %llu\n", (unsigned long long)all, (unsigned long long)in_range);
    for (k = 0; k < n_ranges; k++)
        fprintf(f, "range %d %llu\n", k, (unsigned long long)range_counts[k]);
    if (f != stderr)
        fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    int k;
    (void)info;
    for (k = 0; k < argc; k++) {
        char *eq = strchr(argv[k], '=');
        if (!eq)
            return 1;
        *eq = '\0';
        if (!strcmp(argv[k], "out")) out_path = eq + 1;
        else if (!strcmp(argv[k], "lo")) lo = strtoull(eq + 1, NULL, 0);
        else if (!strcmp(argv[k], "hi")) hi = strtoull(eq + 1, NULL, 0);
        else if (!strcmp(argv[k], "begin")) begin = strtoull(eq + 1, NULL, 0);
        else if (!strcmp(argv[k], "end")) end = strtoull(eq + 1, NULL, 0);
        else if (!strcmp(argv[k], "ranges")) { if (load_ranges(eq + 1)) return 1; }
        else return 1; /* an unknown argument: refuse to load rather than count wrong */
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_quit, NULL);
    return 0;
}
