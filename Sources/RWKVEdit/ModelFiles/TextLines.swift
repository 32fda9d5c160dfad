/// The one line splitter for every text file the tools read (values files, eval suites, vocabularies,
/// pairs files): LF and CRLF endings both end a line, so a file saved on Windows reads the same.
/// It works on UTF-8 bytes because Swift's `String` treats "\r\n" as a single Character, which
/// `split(separator: "\n")` never matches.
public enum TextLines {
    /// The lines of `bytes`, split at LF with one CR before each LF dropped; a final line without a
    /// newline is kept, and empty lines are kept so line numbers stay right.
    public static func split<C: Collection>(_ bytes: C) -> [C.SubSequence] where C.Element == UInt8, C.SubSequence: BidirectionalCollection {
        bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0.last == 0x0D ? $0.dropLast() : $0 }
    }

    /// The lines of `text` (see `split(_:)` on bytes).
    public static func split(_ text: String) -> [Substring] {
        split(text.utf8).map { Substring($0) }
    }
}
