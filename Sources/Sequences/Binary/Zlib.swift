import CZlib

/// zlib streams (RFC 1950) as `.klg` depth and ScanNet `.sens` depth store them.
///
/// Inflation writes into a buffer of the size the caller expects (the image's bytes), so a
/// crafted block can never make it allocate more than the image it claims to be.
public enum Zlib {
    public enum InflateError: Error, Equatable, CustomStringConvertible {
        /// The stream holds more than `expected` bytes.
        case tooLong(expected: Int)
        /// The stream ended after `found` bytes, `expected` were needed.
        case tooShort(expected: Int, found: Int)
        /// Not a valid zlib stream (zlib's message).
        case invalid(String)
        /// The input ended before the stream did, after `found` bytes of output.
        case truncated(found: Int)
        /// `input` bytes cannot inflate to `expected` (deflate's ratio is at most 1032:1), so the
        /// output is never allocated.
        case tooSmallFor(expected: Int, input: Int)

        public var description: String {
            switch self {
            case .tooLong(let e): return "inflates to more than the expected \(e) bytes"
            case .tooShort(let e, let f): return "inflates to \(f) bytes, expected \(e)"
            case .invalid(let m): return "not a valid zlib stream: \(m)"
            case .truncated(let f): return "the zlib stream is truncated (ends after \(f) output bytes)"
            case .tooSmallFor(let e, let n): return "cannot inflate to the expected \(e) bytes: \(n) bytes of zlib data hold at most \(Zlib.maxOutput(forInput: n))"
            }
        }
    }

    /// Inflates `input` into exactly `expected` bytes; anything else is an error.
    public static func inflate(_ input: ArraySlice<UInt8>, expected: Int) -> Result<[UInt8], InflateError> {
        precondition(expected >= 0)
        guard expected <= maxOutput(forInput: input.count) else { return .failure(.tooSmallFor(expected: expected, input: input.count)) }
        var output = [UInt8](repeating: 0, count: expected)
        var produced = 0
        var message = [CChar](repeating: 0, count: 128)
        let status = input.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                semfuse_zlib_inflate(src.baseAddress, src.count, dst.baseAddress, dst.count, &produced, &message, message.count)
            }
        }
        switch status {
        case 0:
            if produced != expected { return .failure(.tooShort(expected: expected, found: produced)) }
            return .success(output)
        case 1: return .failure(.tooLong(expected: expected))
        case 3: return .failure(.truncated(found: produced))
        default:
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .failure(.invalid(text))
        }
    }

    /// The most `count` bytes of zlib data can inflate to: deflate's best ratio is 1032:1, plus
    /// slack for the stream's header and trailer.
    public static func maxOutput(forInput count: Int) -> Int { 1032 * count + 1024 }

    /// zlib `compress2` at `level` (1 = `Z_BEST_SPEED`, ElasticFusion's loggers' choice).
    public static func compress(_ input: [UInt8], level: Int32 = 1) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: semfuse_zlib_bound(input.count))
        var size = 0
        let status = input.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                semfuse_zlib_compress(src.baseAddress, src.count, level, dst.baseAddress, dst.count, &size)
            }
        }
        guard status == 0 else { return nil }
        output.removeSubrange(size...)
        return output
    }
}
