import Foundation

/// Next-token probabilities from logits, in double precision (a 65536-way softmax in f32 loses the
/// small probabilities the edit verdicts compare): p_i = exp((l_i − max) / T) / Σ.
public func softmax(_ logits: [Float], temperature: Float = 1) -> [Double] {
    let m = Double(logits.max() ?? 0), t = Double(temperature)
    let e = logits.map { exp((Double($0) - m) / t) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

/// Indices of the k largest values, largest first; equal values in index order. One pass that keeps
/// the best k so far (a vocabulary is read a few times per edit: sorting all of it cost more than the
/// forward pass that made it).
public func topK<T: Comparable>(_ values: [T], _ k: Int) -> [Int] {
    guard k > 0 else { return [] }
    var best: [Int] = []
    best.reserveCapacity(min(k, values.count) + 1)
    for i in values.indices {
        if best.count == k, !(values[i] > values[best[k - 1]]) { continue }
        // After the last kept index with a value ≥ this one: ties stay in index order.
        var at = best.count
        while at > 0, values[i] > values[best[at - 1]] { at -= 1 }
        best.insert(i, at: at)
        if best.count > k { best.removeLast() }
    }
    return best
}
