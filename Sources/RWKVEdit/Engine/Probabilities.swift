import Foundation

/// Next-token probabilities from logits, in double precision (a 65536-way softmax in f32 loses the
/// small probabilities the edit verdicts compare): p_i = exp((l_i − max) / T) / Σ.
public func softmax(_ logits: [Float], temperature: Float = 1) -> [Double] {
    let m = Double(logits.max() ?? 0), t = Double(temperature)
    let e = logits.map { exp((Double($0) - m) / t) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

/// Indices of the k largest values, largest first.
public func topK<T: Comparable>(_ values: [T], _ k: Int) -> [Int] {
    Array(values.indices.sorted { values[$0] > values[$1] }.prefix(k))
}
