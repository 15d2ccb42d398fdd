#ifndef SEMFUSE_CPNG_SHIM_H
#define SEMFUSE_CPNG_SHIM_H
#include <png.h>
#include <string.h>

/* Swift drops composite macros such as PNG_FORMAT_RGB; re-export what the codec needs. */
static const png_uint_32 semfuse_png_format_gray = PNG_FORMAT_GRAY;
static const png_uint_32 semfuse_png_format_rgb = PNG_FORMAT_RGB;
static const png_uint_32 semfuse_png_format_rgba = PNG_FORMAT_RGBA;
static const png_uint_32 semfuse_png_format_linear_y = PNG_FORMAT_LINEAR_Y;
static const png_uint_32 semfuse_png_format_flag_linear = PNG_FORMAT_FLAG_LINEAR;
static const png_uint_32 semfuse_png_format_flag_color = PNG_FORMAT_FLAG_COLOR;
static const png_uint_32 semfuse_png_format_flag_alpha = PNG_FORMAT_FLAG_ALPHA;
static const png_uint_32 semfuse_png_image_version = PNG_IMAGE_VERSION;

static inline png_uint_32 semfuse_png_image_size(const png_image *image) {
    return PNG_IMAGE_SIZE(*image);
}
static inline int semfuse_png_image_failed(const png_image *image) {
    return PNG_IMAGE_FAILED(*image);
}
/* The original bit depth of the stored samples (8 or 16), needed to reject 8-bit depth PNGs. */
static inline int semfuse_png_is_16bit(const png_image *image) {
    return (image->format & PNG_FORMAT_FLAG_LINEAR) != 0;
}
#endif
