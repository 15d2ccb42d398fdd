#ifndef SEMFUSE_CJPEG_SHIM_H
#define SEMFUSE_CJPEG_SHIM_H
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

/* JPEG through libjpeg-turbo. libjpeg reports errors by longjmp, which Swift cannot call
   through, so decode and encode live in this small C target (jpeg_codec.c).
   Both return 0 on success; on failure they write a message to `error`. Decoding returns 2,
   with "width height" in `error`, when the header declares an empty image or one beyond
   `max_side` per side or `max_pixels` in all (checked before anything is allocated);
   `max_memory` caps libjpeg's working memory (progressive coefficient buffers). */
int semfuse_jpeg_decode_rgb(const unsigned char *data, size_t size,
                            long max_side, long max_pixels, size_t max_memory,
                            unsigned char **out_pixels, int *out_width, int *out_height,
                            char *error, size_t error_size);
int semfuse_jpeg_encode_rgb(const unsigned char *pixels, int width, int height, int quality,
                            unsigned char **out_data, unsigned long *out_size,
                            char *error, size_t error_size);
void semfuse_jpeg_free(void *pointer);
#endif
