/// Which frames of a sequence to use: a half-open range of positions and a stride.
public struct FrameSelection: Equatable, Sendable, CustomStringConvertible {
    public var start: Int
    public var end: Int?
    public var every: Int

    public init(start: Int = 0, end: Int? = nil, every: Int = 1) {
        self.start = start; self.end = end; self.every = every
    }

    /// Parses `a:b`, `a:`, `:b` or a single `a` (meaning `a:a+1`).
    public init(parsing text: String, every: Int = 1) throws {
        guard every >= 1 else { throw PipelineError.invalidOption("--every must be at least 1, got \(every)") }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        func number(_ s: String) throws -> Int? {
            if s.isEmpty { return nil }
            guard let v = Int(s), v >= 0 else { throw PipelineError.invalidOption("--frames: '\(s)' is not a non-negative frame number") }
            return v
        }
        switch parts.count {
        case 1:
            guard let a = try number(parts[0]) else { throw PipelineError.invalidOption("--frames: empty") }
            self.init(start: a, end: a + 1, every: every)
        case 2:
            let a = try number(parts[0]) ?? 0
            let b = try number(parts[1])
            if let b, b <= a { throw PipelineError.invalidOption("--frames \(text): end must be after start") }
            self.init(start: a, end: b, every: every)
        default:
            throw PipelineError.invalidOption("--frames '\(text)': expected a:b")
        }
    }

    /// Positions selected from a sequence of `count` frames.
    public func positions(count: Int) -> [Int] {
        let hi = min(end ?? count, count)
        guard start < hi else { return [] }
        return Array(stride(from: start, to: hi, by: every))
    }

    public var description: String { "\(start):\(end.map(String.init) ?? "") every \(every)" }
}

import Foundation
