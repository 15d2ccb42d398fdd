#include "CAllocator.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>

int semfuse_keep_freed_memory(long mmap_threshold, long trim_threshold) {
    if (mmap_threshold <= 0 || trim_threshold <= 0 || mmap_threshold > 0x7fffffffL || trim_threshold > 0x7fffffffL) return 0;
    int a = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    int b = mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
    return a == 1 && b == 1;
}
#else
int semfuse_keep_freed_memory(long mmap_threshold, long trim_threshold) {
    (void)mmap_threshold; (void)trim_threshold;
    return 0;
}
#endif
