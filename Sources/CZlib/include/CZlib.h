#ifndef SEMFUSE_CZLIB_H
#define SEMFUSE_CZLIB_H
#include <stddef.h>

/* zlib streams (RFC 1950, what zlib's compress2/uncompress write and read) for the .klg and
   ScanNet .sens readers and the .klg writer. The output buffer is the caller's: nothing here
   allocates more than zlib's own fixed state, so a crafted stream cannot make it grow.

   semfuse_zlib_inflate returns
     0  the stream ended; *out_size bytes were written (at most out_capacity)
     1  the stream holds more than out_capacity bytes
     2  the data is not a valid zlib stream (message in `error`)
     3  the input ended before the stream did (truncated) */
int semfuse_zlib_inflate(const unsigned char *input, size_t input_size,
                         unsigned char *output, size_t out_capacity, size_t *out_size,
                         char *error, size_t error_size);

/* The largest output semfuse_zlib_compress can produce for `input_size` bytes. */
size_t semfuse_zlib_bound(size_t input_size);

/* compress2 at `level` (1 = Z_BEST_SPEED, as ElasticFusion's loggers write). Returns 0 and the
   size in *out_size, or a zlib error code. */
int semfuse_zlib_compress(const unsigned char *input, size_t input_size, int level,
                          unsigned char *output, size_t out_capacity, size_t *out_size);
#endif
