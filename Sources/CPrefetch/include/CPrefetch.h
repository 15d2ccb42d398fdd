#ifndef SEMFUSE_CPREFETCH_H
#define SEMFUSE_CPREFETCH_H

/// Asks the CPU to start loading the cache line at `address` for writing. Swift has no prefetch
/// intrinsic; the label update reads one surfel record per pixel, and the index maps' depth
/// tests one key per surfel, in orders the hardware prefetcher cannot predict, and issuing the
/// load a little ahead hides its latency. A hint only: never faults, whatever the address.
static inline void semfuse_prefetch_for_write(const void *address) {
    __builtin_prefetch(address, 1, 3);
}

/// Asks the CPU to start loading the cache line at `address` for reading: data that several
/// workers read, where a write-intent prefetch would take the line from the others.
static inline void semfuse_prefetch_for_read(const void *address) {
    __builtin_prefetch(address, 0, 3);
}
/// Tells the CPU this thread is spin-waiting (x86 `pause`): the sibling hyperthread gets the
/// core's resources and the loop does not flood the memory system with speculative loads.
static inline void semfuse_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
#endif
