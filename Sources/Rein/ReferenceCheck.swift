import ReinModel

extension RunConfig {
    /// Checks that `reference` (loaded from `source`) can be this run's π_ref and starting policy.
    ///
    /// The policy's shape comes from the reference, so a `model:` value that differs from it
    /// would be silently ignored (and `config.yaml` would record a shape the run never had): a
    /// mismatch is an error naming the key. Weights that are not finite (a diverged
    /// pretraining) would only show much later as garbage samples, so they are named here too.
    /// - Throws: ``ConfigError`` naming the mismatching key or the bad weights.
    public func checkReference(_ reference: GPTParameters, source: String) throws(ConfigError) {
        let shape = reference.config
        let pairs: [(key: String, configured: Int, actual: Int)] = [
            ("model.context", model.context, shape.context), ("model.d_model", model.dModel, shape.dModel),
            ("model.layers", model.layers, shape.layers), ("model.heads", model.heads, shape.heads),
        ]
        for (key, configured, actual) in pairs where configured != actual {
            throw ConfigError(
                path: key,
                "is \(configured), but the reference \(source) has \(actual) (the model's shape comes from "
                    + "the reference: set \(key)=\(actual), or pretrain a reference of this shape)")
        }
        let bad = reference.values.count { !$0.isFinite }
        if bad > 0 {
            let first = reference.values.firstIndex { !$0.isFinite } ?? 0
            throw ConfigError(
                path: "train.reference",
                "\(source) has \(bad) weights that are NaN or infinite (the first at index \(first) of "
                    + "\(reference.values.count)); the pretraining diverged or the file is damaged: pretrain it again"
            )
        }
    }
}
