#ifndef SEMFUSE_CALLOCATOR_H
#define SEMFUSE_CALLOCATOR_H

/// Keeps freed memory in the process's heap instead of handing it back to the kernel: glibc's
/// malloc stops serving allocations below `mmap_threshold` bytes by mmap and stops trimming the
/// heap until `trim_threshold` bytes are free. Swift's Glibc module does not export mallopt.
/// Returns 1 when both settings were taken, 0 otherwise (and on C libraries without mallopt).
int semfuse_keep_freed_memory(long mmap_threshold, long trim_threshold);

#endif
