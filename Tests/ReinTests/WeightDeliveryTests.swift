import Testing

@testable import Rein

@Suite("Weight delivery policy")
struct WeightDeliveryTests {
    @Test func broadcastPublishesEveryVersionAndOrdersCarryOnlyWhatWasNotPublished() {
        var delivery = WeightDelivery(mode: .broadcast, partialRollouts: false)
        #expect(delivery.subscribes)
        let published = delivery.trained(version: 1, subscribers: 256)
        #expect(published)
        let carried = [
            delivery.order(version: 1, have: 0, inline: false),  // a subscriber: from the broadcast
            delivery.order(version: 1, have: 0, inline: true),  // no subscription: asked inline
            delivery.order(version: 7, have: 0, inline: false),  // never published (before a restart)
            delivery.order(version: 1, have: 1, inline: true),  // the worker holds it
        ]
        #expect(carried == [false, true, true, false])
        #expect(delivery.counts == WeightDeliveryCounts(broadcasts: 1, inOrders: 2, fetches: 0))
    }

    @Test func ordersNeverPublishAndCarryWhateverTheWorkerLacks() {
        var delivery = WeightDelivery(mode: .orders, partialRollouts: false)
        #expect(!delivery.subscribes)
        let published = (1...4).map { delivery.trained(version: $0, subscribers: 1) }
        #expect(published == [false, false, false, false] && delivery.published.isEmpty)
        let carried = [
            delivery.order(version: 4, have: 2, inline: false),
            delivery.order(version: 4, have: -1, inline: true),
            delivery.order(version: 4, have: 4, inline: false),
        ]
        #expect(carried == [true, true, false])
        #expect(delivery.counts == WeightDeliveryCounts(broadcasts: 0, inOrders: 2, fetches: 0))
    }

    @Test func autoBroadcastsToAFewWorkersOrForPartialRolloutsElseUsesTheOrders() {
        let limit = WeightDelivery.broadcastSubscriberLimit
        var auto = WeightDelivery(mode: .auto, partialRollouts: false)
        #expect(auto.subscribes)
        #expect(auto.broadcasts(subscribers: 1) && auto.broadcasts(subscribers: limit))
        #expect(!auto.broadcasts(subscribers: limit + 1) && !auto.broadcasts(subscribers: 256))
        let published = [
            auto.trained(version: 1, subscribers: limit), auto.trained(version: 2, subscribers: limit + 1),
        ]
        #expect(published == [true, false])
        // Version 1 went out on the broadcast, version 2 did not: only 2 rides in the order.
        let carried = [
            auto.order(version: 1, have: 0, inline: false), auto.order(version: 2, have: 1, inline: false),
        ]
        #expect(carried == [false, true])
        let partial = WeightDelivery(mode: .auto, partialRollouts: true)
        #expect(partial.broadcasts(subscribers: 256))
    }

    @Test func aFailedOrForgottenPublicationGoesInTheOrder() {
        var delivery = WeightDelivery(mode: .broadcast, partialRollouts: false)
        let first = delivery.trained(version: 1, subscribers: 2)
        let second = delivery.trained(version: 2, subscribers: 2)
        #expect(first && second)
        delivery.publishFailed(version: 1)
        let failed = delivery.order(version: 1, have: 0, inline: false)
        #expect(failed)
        delivery.keep([3])
        #expect(delivery.published.isEmpty)
        let forgotten = delivery.order(version: 2, have: 0, inline: false)
        #expect(forgotten)
    }

    @Test func theConfigChoosesTheMode() throws {
        var config = RunConfig()
        #expect(config.runtime.weightDelivery == .auto)
        config.runtime.weightDelivery = .orders
        #expect(WeightDelivery(config).mode == .orders)
        try config.validate()
        config.train.partialRollouts = true
        #expect(throws: ConfigError.self) { try config.validate() }
        config.runtime.weightDelivery = .broadcast
        try config.validate()
        #expect(WeightDelivery(config).partialRollouts)
    }
}
