import ArgumentParser
import Foundation
import ReinMetrics
import Testing

@testable import ReinCLI

@Suite("rein top")
struct TopTests {
    static let page = """
        # HELP rein_policy_version The learner's policy version after its last step.
        # TYPE rein_policy_version gauge
        rein_policy_version 19.0
        rein_batches_consumed_total 19
        rein_workers_connected 2.0
        rein_learner_busy_fraction 0.25
        rein_samples_produced_total 320
        rein_samples_trained_total 288
        rein_samples_dropped_total{reason="stale"} 16
        rein_samples_dropped_total{reason="abandoned"} 0
        rein_samples_refused_total{reason="lease expired"} 16
        rein_samples_in_flight 16.0
        rein_samples_lost_total 0
        rein_token_lag_bucket{le="0.0"} 10
        rein_token_lag_bucket{le="1.0"} 40
        rein_token_lag_bucket{le="4.0"} 40
        rein_token_lag_bucket{le="6.0"} 50
        rein_token_lag_bucket{le="+Inf"} 60
        rein_token_lag_sum 150.0
        rein_token_lag_count 60
        rein_learner_step_seconds_sum 2.0
        rein_learner_step_seconds_count 20
        rein_tracker_step 19.0
        rein_tracker_token_ratio_ess_fraction{lag="1"} 0.99
        rein_tracker_token_ratio_p1{lag="1"} 0.9
        rein_tracker_token_ratio_p99{lag="1"} 1.1
        rein_tracker_behaviour_kl{lag="1"} 0.001
        rein_tracker_kl_gradient_bias{lag="1",form="k2_loss"} 0.04
        rein_wire_rejections_total{reason="badMagic"} 3
        weird{a="x\\"y, z"} 7
        not a sample
        """

    @Test func aPageParsesLabelsEscapesAndHistograms() {
        let page = MetricsPage(parsing: Self.page)
        #expect(page.value(.policyVersion) == 19)
        #expect(page.value(.samplesRefused, labels: ["reason": "lease expired"]) == 16)
        #expect(
            page.samples.contains { $0.name == "weird" && $0.labels == ["a": "x\"y, z"] && $0.value == 7 })
        #expect(!page.samples.contains { $0.name == "not" })
        #expect(page.mean(.learnerStepSeconds) == 0.1)
        let buckets = page.buckets(.tokenLag)
        #expect(buckets.map(\.label) == ["0", "1", "5–6", "> 6"])
        #expect(buckets.map(\.count) == [10, 30, 10, 10])
    }

    @Test func theFrameShowsTheRun() {
        let lines = TopDashboard.lines(MetricsPage(parsing: Self.page), source: "http://h:1/metrics")
        let text = lines.joined(separator: "\n")
        #expect(lines[0].hasPrefix("rein top · http://h:1/metrics · "))
        #expect(text.contains("learner  version 19 · batches 19 · workers 2 · busy 25.0%"))
        #expect(text.contains("step 100.0 ms"))
        #expect(
            text.contains(
                "ledger   produced 320 = trained 288 + dropped 16 (stale 16) + in flight 16 + lost 0; "
                    + "refused: lease expired 16"))
        #expect(text.contains("  1      50.0%  " + String(repeating: "█", count: 20)))
        #expect(text.contains("tracker  latest observation at step 19 · form k2_loss"))
        #expect(text.contains("  1     0.99     0.9      1.1      0.001      0.04"))
        #expect(text.contains("wire     rejected: badMagic 3"))
        #expect(!text.contains("workers  batches"))
    }

    @Test func theEndpointComesFromTheArgumentOrTheConfig() throws {
        #expect(try TopCommand.parse(["127.0.0.1:9464"]).endpoint() == ("127.0.0.1", 9464))
        #expect(
            try TopCommand.parse(["--set", "runtime.metrics_bind=0.0.0.0:9000"]).endpoint() == (
                "127.0.0.1", 9000
            ))
        #expect(throws: CLIError.self) { try TopCommand.parse([]).endpoint() }
        #expect(throws: CLIError.self) { try TopCommand.parse(["h:0"]).endpoint() }
    }
}
