import Foundation

/// Ctrl-C / SIGTERM handling: the first signal asks the running reconstruction to stop after
/// the current frame (so the map so far is written); a second one exits at once.
enum Interrupt {
    nonisolated(unsafe) static var requested = false

    static func install() {
        let handler: @convention(c) (Int32) -> Void = { sig in
            if Interrupt.requested { _exit(130) }
            Interrupt.requested = true
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }
}
