#include "CZlib.h"
#include <zlib.h>
#include <string.h>
#include <limits.h>

static void copy_message(char *dst, size_t size, const char *src) {
    if (size == 0) return;
    strncpy(dst, src ? src : "unknown zlib error", size - 1);
    dst[size - 1] = 0;
}

int semfuse_zlib_inflate(const unsigned char *input, size_t input_size,
                         unsigned char *output, size_t out_capacity, size_t *out_size,
                         char *error, size_t error_size) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    *out_size = 0;
    if (input_size > UINT_MAX || out_capacity > UINT_MAX) {
        copy_message(error, error_size, "block larger than 4 GiB");
        return 2;
    }
    if (inflateInit(&stream) != Z_OK) {
        copy_message(error, error_size, "zlib could not be initialised");
        return 2;
    }
    stream.next_in = (Bytef *)input;
    stream.avail_in = (uInt)input_size;
    stream.next_out = output;
    stream.avail_out = (uInt)out_capacity;
    int status = inflate(&stream, Z_FINISH);
    int result;
    if (status == Z_STREAM_END) {
        result = 0;
    } else if (status == Z_DATA_ERROR || status == Z_NEED_DICT || status == Z_STREAM_ERROR || status == Z_MEM_ERROR) {
        copy_message(error, error_size, stream.msg ? stream.msg : (status == Z_NEED_DICT ? "needs a preset dictionary" : "invalid data"));
        result = 2;
    } else if (stream.avail_out == 0) {
        /* Output full before the end: does the stream really hold more? One spare byte says. */
        unsigned char spare;
        stream.next_out = &spare;
        stream.avail_out = 1;
        int more = inflate(&stream, Z_FINISH);
        if (more == Z_STREAM_END && stream.avail_out == 1) {
            result = 0;
        } else if (more == Z_DATA_ERROR || more == Z_NEED_DICT) {
            copy_message(error, error_size, stream.msg ? stream.msg : "invalid data");
            result = 2;
        } else if (stream.avail_out == 0) {
            result = 1;
        } else {
            result = 3;
        }
    } else {
        result = 3;
    }
    *out_size = (size_t)(stream.total_out > out_capacity ? out_capacity : stream.total_out);
    inflateEnd(&stream);
    return result;
}

size_t semfuse_zlib_bound(size_t input_size) {
    return (size_t)compressBound((uLong)input_size);
}

int semfuse_zlib_compress(const unsigned char *input, size_t input_size, int level,
                          unsigned char *output, size_t out_capacity, size_t *out_size) {
    uLongf size = (uLongf)out_capacity;
    int status = compress2(output, &size, input, (uLong)input_size, level);
    *out_size = (size_t)size;
    return status == Z_OK ? 0 : status;
}
