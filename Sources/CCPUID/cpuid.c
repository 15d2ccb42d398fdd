#include "CCPUID.h"
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

semfuse_cpu_words semfuse_read_cpu_words(void) {
    semfuse_cpu_words w = {0, 0, 0, 0, 0, 0};
#if defined(__x86_64__) || defined(__i386__)
    unsigned int a, b, c, d;
    w.is_x86_64 = 1;
    w.max_leaf = __get_cpuid_max(0, 0);
    if (w.max_leaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) w.leaf1_ecx = c;
    if (w.max_leaf >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) w.leaf7_ebx = b;
    if (__get_cpuid_max(0x80000000u, 0) >= 0x80000001u && __get_cpuid(0x80000001u, &a, &b, &c, &d)) w.ext1_ecx = c;
    /* XGETBV raises #UD unless the OS enabled XSAVE (OSXSAVE, leaf 1 ECX bit 27). */
    if (w.leaf1_ecx & (1u << 27)) {
        unsigned int lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        w.xcr0 = ((uint64_t)hi << 32) | lo;
    }
#endif
    return w;
}
