import Foundation
import Logging
import ReinRuntime
import ServiceLifecycle
import Synchronization
import Testing

@Suite("rein launch supervisor: decisions")
struct SupervisorMachineTests {
    typealias Machine = SupervisorMachine

    /// A machine with a learner listening and two workers started.
    func listening(maxRestarts: Int = 1) -> Machine {
        var machine = Machine(workers: 2, maxRestarts: maxRestarts)
        _ = machine.start()
        _ = machine.handle(.ready(endpoint: "tcp://127.0.0.1:7070"))
        return machine
    }

    @Test func theWorkersStartOnceTheLearnerReportsItsEndpoint() {
        var machine = Machine(workers: 2, maxRestarts: 1)
        #expect(machine.start() == [.spawn(.learner, endpoint: nil, restart: 0)])
        #expect(
            machine.handle(.ready(endpoint: "tcp://h:1"))
                == [
                    .spawn(.worker(0), endpoint: "tcp://h:1", restart: 0),
                    .spawn(.worker(1), endpoint: "tcp://h:1", restart: 0),
                ])
        #expect(machine.running == [.learner, .worker(0), .worker(1)])
        #expect(machine.handle(.ready(endpoint: "tcp://h:1")).isEmpty)  // announced once
    }

    @Test func aCrashedChildIsRestartedUpToTheLimitACleanExitIsNot() {
        var machine = listening(maxRestarts: 1)
        #expect(machine.handle(.exited(.worker(1), status: 0)).isEmpty)
        #expect(
            machine.handle(.exited(.worker(0), status: 6))
                == [.spawn(.worker(0), endpoint: "tcp://127.0.0.1:7070", restart: 1)])
        #expect(machine.handle(.exited(.worker(0), status: 6)).isEmpty)  // the limit
        #expect(
            machine.handle(.exited(.learner, status: 9))
                == [.spawn(.learner, endpoint: "tcp://127.0.0.1:7070", restart: 1)])
        #expect(machine.learnerStatus == nil && !machine.isFinished)
    }

    @Test func aLearnerThatFinishesGivesTheWorkersAGracePeriodThenSignals() {
        var machine = listening()
        #expect(machine.handle(.exited(.learner, status: 0)) == [.arm(.grace)])
        #expect(machine.learnerStatus == 0)
        #expect(machine.handle(.exited(.worker(0), status: 1)).isEmpty)  // not restarted: the run is over
        #expect(machine.handle(.timer(.grace)) == [.signal(.worker(1), .terminate), .arm(.kill)])
        #expect(machine.handle(.timer(.kill)) == [.signal(.worker(1), .kill)])
        #expect(!machine.isFinished)
        #expect(machine.handle(.exited(.worker(1), status: 9)).isEmpty)
        #expect(machine.isFinished && machine.learnerStatus == 0)
    }

    @Test func aStopSignalsEveryChildAndRestartsNothing() {
        var machine = listening()
        #expect(
            machine.handle(.stop)
                == [
                    .signal(.learner, .terminate), .signal(.worker(0), .terminate),
                    .signal(.worker(1), .terminate),
                    .arm(.kill),
                ])
        #expect(machine.handle(.stop).isEmpty)
        #expect(machine.handle(.exited(.worker(0), status: 3)).isEmpty)
        #expect(machine.handle(.exited(.learner, status: 0)).isEmpty)  // no grace: already stopping
        #expect(machine.handle(.exited(.worker(1), status: 0)).isEmpty)
        #expect(machine.isFinished && machine.learnerStatus == 0)
    }

    @Test func aLearnerThatDiesBeforeListeningEndsTheLaunch() {
        var machine = Machine(workers: 2, maxRestarts: 3)
        _ = machine.start()
        #expect(machine.handle(.exited(.learner, status: 1)).isEmpty)
        #expect(machine.isFinished && machine.learnerStatus == 1)
    }
}

@Suite("rein launch supervisor: processes")
struct LaunchSupervisorTests {
    /// A stand-in for `rein`: the "learner" prints the readiness handshake; every child then waits
    /// until SIGTERM, and exits 0 on it. (Python, because it can unblock SIGTERM: a child of
    /// Foundation's `Process` inherits the signal mask of the spawning thread, and the
    /// cooperative pool's threads block most signals; `rein` children receive SIGTERM through
    /// swift-service-lifecycle's signal source, which works with the signal blocked.)
    func fakeRein() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fake-rein-\(UUID().uuidString)"
        ).path
        let script = """
            #!/usr/bin/env python3
            import signal, sys
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            if sys.argv[1] == "learner":
                print('\(ReadyHandshake.line(endpoint: "tcp://127.0.0.1:9"))', flush=True)
            print("started", sys.argv[1], flush=True)
            while True:
                signal.pause()
            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(chmod(path, 0o755) == 0)
        return path
    }

    /// Graceful shutdown of the supervisor's group stops every child it started (the learner and
    /// the workers started after its handshake), and the supervisor returns once they are gone.
    @Test(.timeLimit(.minutes(2))) func gracefulShutdownStopsEveryChild() async throws {
        let started = Mutex<[SupervisorMachine.Role: Int32]>([:])
        let supervisor = LaunchSupervisor(
            options: .init(
                executable: try fakeRein(), learnerArguments: ["learner", "--bind", "tcp://127.0.0.1:*"],
                workerArguments: [], workers: 2, maxRestarts: 0, killAfter: .seconds(5)),
            logger: Logger(label: "test.launch")
        ) { role, pid in started.withLock { $0[role] = pid } }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: supervisor, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: Logger(label: "test.group")))
        let running = Task { try await group.run() }
        #expect(await eventually { started.withLock { $0.count } == 3 })
        let pids = started.withLock { $0 }
        for (role, pid) in pids { #expect(kill(pid, 0) == 0, "\(role) runs") }
        await group.triggerGracefulShutdown()
        try await running.value  // the learner exited 0 on SIGTERM
        for (role, pid) in pids {
            #expect(kill(pid, 0) == -1 && errno == ESRCH, "\(role) (pid \(pid)) still runs")
        }
    }
}
