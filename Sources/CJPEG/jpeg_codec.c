#include "CJPEG.h"
#include <jpeglib.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} semfuse_jpeg_error;

static void semfuse_jpeg_error_exit(j_common_ptr info) {
    semfuse_jpeg_error *err = (semfuse_jpeg_error *)info->err;
    (*info->err->format_message)(info, err->message);
    longjmp(err->jump, 1);
}

/* Corrupt data produces warnings that libjpeg would print to stderr; turn them into errors so a
   truncated file is reported instead of silently decoded as grey. */
static void semfuse_jpeg_emit_message(j_common_ptr info, int level) {
    if (level < 0) {
        semfuse_jpeg_error_exit(info);
    }
}

static void copy_message(char *dst, size_t size, const char *src) {
    if (size == 0) return;
    strncpy(dst, src, size - 1);
    dst[size - 1] = 0;
}

/* A progressive file can hold thousands of tiny scans, each a full pass over the coefficients:
   a few kilobytes that take minutes to decode. libjpeg-turbo's own tools stop at 500 scans. */
#define SEMFUSE_JPEG_MAX_SCANS 500

static void semfuse_jpeg_progress(j_common_ptr info) {
    if (info->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)info;
        if (d->input_scan_number > SEMFUSE_JPEG_MAX_SCANS) {
            semfuse_jpeg_error *err = (semfuse_jpeg_error *)info->err;
            snprintf(err->message, sizeof err->message, "more than %d progressive scans", SEMFUSE_JPEG_MAX_SCANS);
            longjmp(err->jump, 1);
        }
    }
}

int semfuse_jpeg_decode_rgb(const unsigned char *data, size_t size,
                            long max_side, long max_pixels, size_t max_memory,
                            unsigned char **out_pixels, int *out_width, int *out_height,
                            char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    struct jpeg_progress_mgr progress;
    semfuse_jpeg_error err;
    unsigned char *volatile pixels = NULL;
    *out_pixels = NULL;
    info.err = jpeg_std_error(&err.base);
    err.base.error_exit = semfuse_jpeg_error_exit;
    err.base.emit_message = semfuse_jpeg_emit_message;
    if (setjmp(err.jump)) {
        copy_message(error, error_size, err.message);
        jpeg_destroy_decompress(&info);
        free(pixels);
        return 1;
    }
    jpeg_create_decompress(&info);
    /* Whole-image buffers (progressive coefficients) beyond this fail with an error instead of
       growing without bound: there is no backing store. */
    info.mem->max_memory_to_use = (long)max_memory;
    memset(&progress, 0, sizeof progress);
    progress.progress_monitor = semfuse_jpeg_progress;
    info.progress = &progress;
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    /* The declared size is checked before anything is allocated for it (status 2). */
    if (info.image_width == 0 || info.image_height == 0 || (long)info.image_width > max_side ||
        (long)info.image_height > max_side || (long)info.image_width * (long)info.image_height > max_pixels) {
        snprintf(error, error_size, "%u %u", info.image_width, info.image_height);
        jpeg_destroy_decompress(&info);
        return 2;
    }
    info.out_color_space = JCS_RGB;
    info.scale_num = 1;
    info.scale_denom = 1;
    jpeg_start_decompress(&info);
    size_t stride = (size_t)info.output_width * 3;
    /* Rows are allocated as they are decoded, so a truncated file that declares a large image
       fails (libjpeg's end-of-data warning is an error here) before the full buffer exists. */
    size_t capacity = 0;
    while (info.output_scanline < info.output_height) {
        if (info.output_scanline >= capacity) {
            size_t rows = capacity == 0 ? 64 : capacity * 2;
            if (rows > info.output_height) rows = info.output_height;
            unsigned char *grown = (unsigned char *)realloc(pixels, stride * rows);
            if (!grown) {
                copy_message(error, error_size, "out of memory");
                jpeg_destroy_decompress(&info);
                free(pixels);
                return 1;
            }
            pixels = grown;
            capacity = rows;
        }
        unsigned char *row = pixels + stride * info.output_scanline;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    *out_width = (int)info.output_width;
    *out_height = (int)info.output_height;
    jpeg_destroy_decompress(&info);
    *out_pixels = pixels;
    return 0;
}

int semfuse_jpeg_encode_rgb(const unsigned char *pixels, int width, int height, int quality,
                            unsigned char **out_data, unsigned long *out_size,
                            char *error, size_t error_size) {
    struct jpeg_compress_struct info;
    semfuse_jpeg_error err;
    unsigned char *buffer = NULL;
    unsigned long size = 0;
    info.err = jpeg_std_error(&err.base);
    err.base.error_exit = semfuse_jpeg_error_exit;
    if (setjmp(err.jump)) {
        copy_message(error, error_size, err.message);
        jpeg_destroy_compress(&info);
        free(buffer);
        return 1;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, &buffer, &size);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = 3;
    info.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)info.next_scanline * (size_t)width * 3);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    *out_data = buffer;
    *out_size = size;
    return 0;
}

void semfuse_jpeg_free(void *pointer) { free(pointer); }
