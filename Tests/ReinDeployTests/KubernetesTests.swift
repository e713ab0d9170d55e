import Foundation
import Rein
import ReinCLI
import Testing
import Yams

@Suite("deploy/kubernetes")
struct KubernetesTests {
    /// Every document of every manifest, by "Kind/name".
    static func objects() throws -> [String: YAMLNode] {
        let dir = repository.appendingPathComponent("deploy/kubernetes")
        var objects: [String: YAMLNode] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        where file.hasSuffix(".yaml") && file != "kustomization.yaml" {
            for document in try Yams.compose_all(yaml: try repositoryFile("deploy/kubernetes/" + file)) {
                let object = YAMLNode(document, path: file)
                let key = "\(object["kind"].string ?? "?")/\(object["metadata"]["name"].string ?? "?")"
                #expect(objects[key] == nil, "\(key) defined twice")
                objects[key] = object
            }
        }
        return objects
    }

    static func config() throws -> RunConfig {
        let objects = try objects()
        let text = try #require(objects["ConfigMap/rein-config"]?["data"]["config.yaml"].string)
        return try ConfigLoader.load(RunConfig.self, yaml: text)
    }

    static func port(_ endpoint: String) -> Int? {
        endpoint.split(separator: ":").last.flatMap { Int($0) }
    }

    @Test func theManifestsDefineEveryRequiredObject() throws {
        let objects = try Self.objects()
        #expect(
            Set(objects.keys) == [
                "ConfigMap/rein-config", "Secret/rein-curve", "Service/rein-learner",
                "StatefulSet/rein-learner",
                "Deployment/rein-workers",
            ])
        for (key, object) in objects {
            #expect(object["apiVersion"].string != nil, "\(key) has no apiVersion")
            #expect(object["metadata"]["labels"]["app.kubernetes.io/name"].string == "rein", "\(key)")
        }
        let kustomization = try Yams.load(yaml: try repositoryFile("deploy/kubernetes/kustomization.yaml"))
        let listed = Set(((kustomization as? [String: Any])?["resources"] as? [String]) ?? [])
        #expect(listed == ["configmap.yaml", "secret.yaml", "learner.yaml", "workers.yaml"])
    }

    @Test func theConfigMapHoldsAValidConfigWithFixedPortsTheServiceExposes() throws {
        let objects = try Self.objects()
        let config = try Self.config()
        let runtime = config.runtime
        #expect(
            ![runtime.broadcastBind, runtime.samplesBind].contains(RuntimeConfig.automatic), "fixed ports")
        let bound = [runtime.learnerBind, runtime.broadcastBind, runtime.samplesBind].compactMap(Self.port)
        #expect(bound.count == 3)

        let service = try #require(objects["Service/rein-learner"])
        let servicePorts = service["spec"]["ports"].array.compactMap { $0["port"].int }
        let targetPorts = service["spec"]["ports"].array.compactMap { $0["targetPort"].int }
        #expect(Set(servicePorts) == Set(bound))
        #expect(Set(targetPorts) == Set(bound))

        // Workers dial the Service by name on the actor port.
        #expect(runtime.learner == "tcp://rein-learner:\(bound[0])")
        #expect(config.runDir.hasPrefix("/data/"))
        #expect(
            config.train.reference.hasPrefix("/data/") && config.pretrain.output == config.train.reference)
    }

    @Test func theLearnerIsAStatefulSetWithAVolumeAProbeAndTheCurveKeys() throws {
        let objects = try Self.objects()
        let set = try #require(objects["StatefulSet/rein-learner"])
        let spec = set["spec"]
        #expect(spec["serviceName"].string == "rein-learner")
        #expect(spec["replicas"].int == 1)
        let podLabels = spec["template"]["metadata"]["labels"].mapping.mapValues(\.string)
        for (key, value) in spec["selector"]["matchLabels"].mapping {
            #expect(podLabels[key] == value.string, "selector \(key) matches the pod labels")
        }
        for (key, value) in try #require(objects["Service/rein-learner"])["spec"]["selector"].mapping {
            #expect(podLabels[key] == value.string, "the Service selects the learner pod (\(key))")
        }
        let container = spec["template"]["spec"]["containers"][0]
        let args = container["args"].strings
        #expect(args.first == "learner")
        #expect(args.contains("--config=/etc/rein/config.yaml"))
        #expect(args.contains("--curve-secret=/etc/rein/keys/learner.key"))
        #expect(args.contains { $0.hasPrefix("--allow=") })
        let probe = container["readinessProbe"]["exec"]["command"].strings
        #expect(Array(probe.prefix(2)) == ["rein", "status"])
        #expect(probe.contains("/etc/rein/config.yaml"))
        let containerPorts = Set(container["ports"].array.compactMap { $0["containerPort"].int })
        #expect(containerPorts == Set(try Self.config().runtime.learnerBindPorts))
        #expect(spec["volumeClaimTemplates"][0]["metadata"]["name"].string == "data")
        try Self.checkMounts(of: spec["template"]["spec"], claims: ["data"], objects: objects)
        // The init container pretrains the reference into the volume once.
        let initArgs = spec["template"]["spec"]["initContainers"][0]["command"].strings.joined(separator: " ")
        #expect(initArgs.contains("rein pretrain --config /etc/rein/config.yaml"))
        #expect(initArgs.contains(try Self.config().train.reference))
    }

    @Test func workersAreADeploymentWithTheirKeysAndTheLearnerPublicKey() throws {
        let objects = try Self.objects()
        let deployment = try #require(objects["Deployment/rein-workers"])
        let spec = deployment["spec"]
        #expect((spec["replicas"].int ?? 0) >= 1)
        let podLabels = spec["template"]["metadata"]["labels"].mapping.mapValues(\.string)
        for (key, value) in spec["selector"]["matchLabels"].mapping {
            #expect(podLabels[key] == value.string)
        }
        #expect(
            podLabels["app.kubernetes.io/component"] == "worker",
            "the learner Service must not select workers")
        let args = spec["template"]["spec"]["containers"][0]["args"].strings
        #expect(args.first == "worker")
        #expect(args.contains("--config=/etc/rein/config.yaml"))
        #expect(args.contains("--curve-secret=/etc/rein/keys/worker.key"))
        #expect(args.contains("--learner-key=/etc/rein/keys/learner.pub"))
        try Self.checkMounts(of: spec["template"]["spec"], claims: [], objects: objects)
    }

    /// Every mount names a volume of the pod; every ConfigMap/Secret volume names an existing
    /// object and only keys it has.
    static func checkMounts(of pod: YAMLNode, claims: Set<String>, objects: [String: YAMLNode]) throws {
        let volumes = Dictionary(
            uniqueKeysWithValues: pod["volumes"].array.compactMap { v in v["name"].string.map { ($0, v) } })
        let containers = pod["containers"].array + pod["initContainers"].array
        #expect(!containers.isEmpty)
        for container in containers {
            #expect(container["image"].string?.isEmpty == false)
            for mount in container["volumeMounts"].array {
                let name = try #require(mount["name"].string)
                #expect(volumes[name] != nil || claims.contains(name), "\(mount) names no volume")
            }
        }
        let user = pod["securityContext"]["runAsUser"].int
        #expect(user != nil && user != 0 && pod["securityContext"]["runAsNonRoot"].node?.bool == true)
        for (name, volume) in volumes {
            if volume["secret"].exists {
                // Secret files are root-owned: the non-root user reads them through fsGroup.
                #expect(
                    pod["securityContext"]["fsGroup"].int != nil, "\(name): no fsGroup to read the Secret")
                // Kubernetes reads `0440` as octal (YAML 1.1).
                let text = try #require(volume["secret"]["defaultMode"].string, "\(name): no defaultMode")
                let mode = try #require(
                    text.hasPrefix("0o")
                        ? Int(text.dropFirst(2), radix: 8)
                        : text.hasPrefix("0") ? Int(text, radix: 8) : Int(text))
                #expect(mode & 0o040 != 0, "\(name): group-readable (mode \(String(mode, radix: 8)))")
                if volume["secret"]["items"].array.contains(where: {
                    $0["path"].string?.hasSuffix(".key") == true
                }) {
                    #expect(mode & 0o004 == 0, "\(name): a secret key must not be world-readable")
                }
            }
            if let map = volume["configMap"]["name"].string {
                #expect(objects["ConfigMap/\(map)"] != nil, "\(name): no ConfigMap \(map)")
            }
            if let secret = volume["secret"]["secretName"].string {
                let object = try #require(objects["Secret/\(secret)"], "\(name): no Secret \(secret)")
                let keys = Set(object["stringData"].mapping.keys).union(object["data"].mapping.keys)
                for item in volume["secret"]["items"].array {
                    #expect(
                        keys.contains(item["key"].string ?? ""), "\(name): Secret \(secret) has no \(item)")
                }
            }
        }
    }

    @Test(.enabled(if: which("kubectl") != nil, "needs kubectl (no cluster: kustomize renders offline)"))
    func kubectlKustomizeRendersEveryObject() throws {
        let (status, output) = try run(try #require(which("kubectl")), ["kustomize", "deploy/kubernetes"])
        #expect(status == 0, "\(output)")
        let kinds = output.split(separator: "\n").filter { $0.hasPrefix("kind: ") }.map { $0.dropFirst(6) }
        #expect(kinds.sorted() == ["ConfigMap", "Deployment", "Secret", "Service", "StatefulSet"])
    }

    @Test func theSecretHasBothKeyPairsAndNoRealKeyMaterial() throws {
        let secret = try #require(try Self.objects()["Secret/rein-curve"])
        let data = secret["stringData"].mapping
        #expect(Set(data.keys) == ["learner.key", "learner.pub", "worker.key", "worker.pub"])
        for (key, value) in data {
            #expect(value.string?.hasPrefix("REPLACE") == true, "\(key) must stay a placeholder")
        }
    }
}

extension RuntimeConfig {
    /// The ports of the three learner endpoints (fixed ports only).
    var learnerBindPorts: [Int] {
        [learnerBind, broadcastBind, samplesBind].compactMap {
            $0.split(separator: ":").last.flatMap { Int($0) }
        }
    }
}
