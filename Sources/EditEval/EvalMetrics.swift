import Foundation
import RWKVEdit

/// Probabilities of one rewritten query before or after an edit.
public struct QueryProbs: Sendable, Equatable {
    /// P(old answer), the product over its tokens.
    public var pOld: Double
    /// P(new answer); nil for erase/forget queries without a new answer.
    public var pNew: Double?
    public var oldTop1: Bool
    public var newTop1: Bool?
    public init(pOld: Double, pNew: Double?, oldTop1: Bool, newTop1: Bool?) {
        self.pOld = pOld; self.pNew = pNew; self.oldTop1 = oldTop1; self.newTop1 = newTop1
    }

    /// The edit took on this query: P(new) > P(old); without a new answer, the old one lost top-1.
    public var succeeded: Bool {
        if let pNew { return pNew > pOld }
        return !oldTop1
    }
}

/// Probabilities of a neighbour query: its true answer and the edit's new value.
public struct NeighbourProbs: Sendable, Equatable {
    public var pTrue: Double
    public var trueTop1: Bool
    /// P(the edit's new value) on this query; nil when the edit has no new value.
    public var pNew: Double?
    public init(pTrue: Double, trueTop1: Bool, pNew: Double?) { self.pTrue = pTrue; self.trueTop1 = trueTop1; self.pNew = pNew }

    /// The neighbour is untouched: its true answer stays top-1 and beats the edit's new value.
    public var kept: Bool { trueTop1 && (pNew.map { pTrue > $0 } ?? true) }
}

/// A share with its count and a Wilson 95% interval.
public struct Proportion: Sendable, Equatable {
    public let successes: Int
    public let total: Int
    public init(successes: Int, total: Int) { self.successes = successes; self.total = total }

    /// nil when there is nothing to count.
    public var value: Double? { total > 0 ? Double(successes) / Double(total) : nil }
    public var wilson: (low: Double, high: Double)? { EvalMetrics.wilson(successes: successes, total: total) }

    public static func + (a: Proportion, b: Proportion) -> Proportion {
        Proportion(successes: a.successes + b.successes, total: a.total + b.total)
    }
}

/// Knowledge-editing metrics (ROME/MEMIT's CounterFact vocabulary) and the seed's magnitudes.
public enum EvalMetrics {
    /// Efficacy (ES) or paraphrase (PS) score: share of queries where the edit took (P(new) > P(old)).
    public static func success(_ after: [QueryProbs]) -> Proportion {
        Proportion(successes: after.filter(\.succeeded).count, total: after.count)
    }

    /// Share of queries whose new answer is the top-1 prediction (queries without a new answer are skipped).
    public static func top1New(_ after: [QueryProbs]) -> Proportion {
        let withNew = after.compactMap(\.newTop1)
        return Proportion(successes: withNew.filter { $0 }.count, total: withNew.count)
    }

    /// Neighbourhood score (NS): share of neighbours whose true answer stays top-1 and beats P(new).
    public static func neighbourhood(_ after: [NeighbourProbs]) -> Proportion {
        Proportion(successes: after.filter(\.kept).count, total: after.count)
    }

    /// Harmonic mean of the given scores (nil entries are left out; any zero gives zero).
    public static func harmonicMean(_ xs: [Double?]) -> Double? {
        let v = xs.compactMap { $0 }
        guard !v.isEmpty else { return nil }
        if v.contains(where: { $0 <= 0 }) { return 0 }
        return Double(v.count) / v.reduce(0) { $0 + 1 / $1 }
    }

    /// Wilson score interval (95%, z = 1.96) of successes/total; nil when total is 0.
    public static func wilson(successes: Int, total: Int, z: Double = 1.959963984540054) -> (low: Double, high: Double)? {
        guard total > 0 else { return nil }
        let n = Double(total), p = Double(successes) / n, z2 = z * z
        let denom = 1 + z2 / n
        let centre = (p + z2 / (2 * n)) / denom
        let half = z / denom * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        return (max(0, centre - half), min(1, centre + half))
    }

    /// Words of a text for n-gram statistics: runs of letters/digits/apostrophes, and each other
    /// non-space character on its own (close to NLTK's word_tokenize on simple English).
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var cur = ""
        for ch in text {
            if ch.isLetter || ch.isNumber || ch == "'" { cur.append(ch); continue }
            if !cur.isEmpty { out.append(cur.lowercased()); cur = "" }
            if !ch.isWhitespace { out.append(String(ch)) }
        }
        if !cur.isEmpty { out.append(cur.lowercased()) }
        return out
    }

    /// Entropy (bits) of the n-gram frequency distribution of `words`; 0 when there are none.
    public static func ngramEntropy(_ words: [String], n: Int) -> Double {
        guard words.count >= n, n > 0 else { return 0 }
        var counts: [[String]: Int] = [:]
        for i in 0...(words.count - n) { counts[Array(words[i..<(i + n)]), default: 0] += 1 }
        let total = Double(counts.values.reduce(0, +))
        return counts.values.reduce(0) { acc, c in
            let f = Double(c) / total
            return acc - f * log2(f)
        }
    }

    /// ROME/MEMIT's fluency measure: the mean of 2/3·H(bigrams) and 4/3·H(trigrams) of a generated text.
    /// Repetitive (degenerate) text scores low.
    public static func fluency(_ text: String) -> Double {
        let w = words(text)
        return (2.0 / 3.0 * ngramEntropy(w, n: 2) + 4.0 / 3.0 * ngramEntropy(w, n: 3)) / 2
    }

    /// The seed's selectivity: P(control answer) − P(old target answer); higher is better.
    public static func selectivity(pControl: Double, pTarget: Double) -> Double { pControl - pTarget }

    public static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }
}
