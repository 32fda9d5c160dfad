/// How an engine feeds a batch of independent sequences in passes of bounded size: a sequence longer
/// than `maxRows` in near-equal slices (each more than half of `maxRows`), its state carried from one
/// pass to the next, and the pieces packed in order into passes of at most `maxRows` rows and
/// `maxSequences` pieces. A pass's memory grows with its rows, and an engine may have a hard limit.
public struct PassPlan: Sendable, Equatable {
    /// Tokens `tokens` of sequence `sequence`; `isLast` when they end it (its logits are there).
    public struct Piece: Sendable, Equatable {
        public let sequence: Int
        public let tokens: Range<Int>
        public var isLast: Bool
    }

    public let passes: [[Piece]]

    /// `lengths` are the sequences' token counts (a sequence of none gets no piece); `maxRows` and
    /// `maxSequences` are at least 1.
    public init(lengths: [Int], maxRows: Int, maxSequences: Int = .max) {
        let (rowCap, sequenceCap) = (max(1, maxRows), max(1, maxSequences))
        var passes: [[Piece]] = [], rows = 0
        for (i, n) in lengths.enumerated() where n > 0 {
            let slices = (n + rowCap - 1) / rowCap
            for s in 0..<slices {
                let range = (s * n / slices)..<((s + 1) * n / slices)
                // A slice continues the state the one before it leaves: never in the same pass.
                if passes.isEmpty || rows + range.count > rowCap || passes[passes.count - 1].count >= sequenceCap
                    || passes[passes.count - 1].last?.sequence == i {
                    passes.append([])
                    rows = 0
                }
                passes[passes.count - 1].append(Piece(sequence: i, tokens: range, isLast: s == slices - 1))
                rows += range.count
            }
        }
        self.passes = passes
    }
}
