#ifndef SEMFUSE_CCPUID_H
#define SEMFUSE_CCPUID_H
#include <stdint.h>

/* The raw CPUID/XGETBV words that say whether the SIMD kernels' instruction set (x86-64-v3:
   AVX2, FMA, BMI1/2, ...) can run here. Compiled for the baseline x86-64 so it runs on any CPU;
   the decision itself is Swift (CPUCheck.KernelCPU), testable with made-up words. */
typedef struct {
    int is_x86_64;        /* 0 on other architectures: the words below are then all 0 */
    uint32_t max_leaf;    /* CPUID leaf 0 EAX */
    uint32_t leaf1_ecx;   /* CPUID leaf 1 ECX: SSE3 .. AVX, F16C, OSXSAVE */
    uint32_t leaf7_ebx;   /* CPUID leaf 7 subleaf 0 EBX: BMI1, AVX2, BMI2 (0 if max_leaf < 7) */
    uint32_t ext1_ecx;    /* CPUID leaf 0x80000001 ECX: LAHF/SAHF, LZCNT (0 if absent) */
    uint64_t xcr0;        /* XGETBV(0): state the OS saves; 0 unless OSXSAVE is set */
} semfuse_cpu_words;

semfuse_cpu_words semfuse_read_cpu_words(void);
#endif
