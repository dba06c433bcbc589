#!/usr/bin/env python3
"""Static checks of deploy/: the CloudFormation template, the gateway's IAM policy, the image
build files. No AWS needed. Usage: check_deploy.py DEPLOY_DIR

Prints "ok N - what" or "not ok N - what: why" per check (TAP), exits 1 when one failed.
Needs python3-yaml (scripts/install-deps.sh installs it).
"""

import json
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    print("Bail out! python3-yaml is missing (apt-get install python3-yaml)")
    sys.exit(1)


# ---------------------------------------------------------------------------- YAML with tags

class CfnLoader(yaml.SafeLoader):
    """A SafeLoader that turns the CloudFormation short forms into their long forms."""


def _multi(name):
    long_name = "Ref" if name == "Ref" else ("Condition" if name == "Condition" else "Fn::" + name)

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}

    return construct


def _getatt(loader, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        resource, _, attr = value.partition(".")
        return {"Fn::GetAtt": [resource, attr]}
    return {"Fn::GetAtt": loader.construct_sequence(node, deep=True)}


for _tag in ("Ref", "Sub", "If", "Equals", "Not", "And", "Or", "Join", "Select", "Split",
             "FindInMap", "ImportValue", "Condition", "Base64", "Cidr", "GetAZs", "Transform",
             "Length", "ToJsonString"):
    CfnLoader.add_constructor("!" + _tag, _multi(_tag))
CfnLoader.add_constructor("!GetAtt", _getatt)

PSEUDO = {"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
          "AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}


# ---------------------------------------------------------------------------- reporting

class Report:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, what, problems):
        """problems: a list of strings (empty = pass)."""
        self.n += 1
        if problems:
            self.failed += 1
            print(f"not ok {self.n} - {what}")
            for p in problems[:25]:
                print(f"#   {p}")
            if len(problems) > 25:
                print(f"#   ... and {len(problems) - 25} more")
        else:
            print(f"ok {self.n} - {what}")

    def skip(self, what, why):
        self.n += 1
        print(f"ok {self.n} - {what} # SKIP {why}")


# ---------------------------------------------------------------------------- walking

def walk(node, path=""):
    """Yields (path, node) for every dict and list in node, depth first."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def sub_names(value):
    """The ${...} names of an Fn::Sub value, with its variable map's names removed."""
    if isinstance(value, list):
        text, variables = value[0], (value[1] if len(value) > 1 else {})
    else:
        text, variables = value, {}
    if not isinstance(text, str):
        return [], variables
    names = [m for m in re.findall(r"\$\{([^}!][^}]*)\}", text) if m not in variables]
    return names, variables


def refs_of(node):
    """Every resource, parameter or pseudo parameter name node refers to (Ref, GetAtt, Sub)."""
    out = set()
    for _, n in walk(node):
        if not isinstance(n, dict) or len(n) != 1:
            continue
        (k, v), = n.items()
        if k == "Ref" and isinstance(v, str):
            out.add(v)
        elif k == "Fn::GetAtt" and isinstance(v, list) and v and isinstance(v[0], str):
            out.add(v[0])
        elif k == "Fn::Sub":
            names, _ = sub_names(v)
            for name in names:
                out.add(name.split(".")[0])
    return out


def branches(node):
    """A list item or value possibly wrapped in Fn::If: every alternative but AWS::NoValue."""
    if isinstance(node, dict) and list(node) == ["Fn::If"] and isinstance(node["Fn::If"], list) \
            and len(node["Fn::If"]) == 3:
        out = []
        for alt in node["Fn::If"][1:]:
            out.extend(branches(alt))
        return out
    if node == {"Ref": "AWS::NoValue"}:
        return []
    return [node]


def as_list(node):
    out = []
    for item in branches(node):
        if isinstance(item, list):
            for x in item:
                out.extend(branches(x))
        else:
            out.append(item)
    return out


def is_ref(node, name):
    return any(isinstance(b, dict) and b.get("Ref") == name for b in branches(node))


def mentions(node, name):
    return name in refs_of(node)


# ---------------------------------------------------------------------------- IAM

def statement_problems(where, doc):
    """Allow statements must name their actions and resources: no "*", no "svc:*", no
    NotAction / NotResource."""
    problems = []
    if not isinstance(doc, dict):
        return [f"{where}: no policy document"]
    for st in as_list(doc.get("Statement", [])):
        if not isinstance(st, dict):
            problems.append(f"{where}: a statement is not an object")
            continue
        sid = st.get("Sid", "?")
        if st.get("Effect") != "Allow":
            continue
        for key in ("NotAction", "NotResource", "NotPrincipal"):
            if key in st:
                problems.append(f"{where} {sid}: Allow with {key}")
        actions = as_list(st.get("Action", []))
        if not actions:
            problems.append(f"{where} {sid}: no Action")
        for a in actions:
            if not isinstance(a, str):
                continue
            if a == "*" or re.fullmatch(r"[A-Za-z0-9-]+:\*", a):
                problems.append(f"{where} {sid}: Action {a!r} allows a whole service")
        resources = as_list(st.get("Resource", []))
        if "Principal" not in st and not resources:
            problems.append(f"{where} {sid}: no Resource")
        for r in resources:
            if r == "*":
                problems.append(f"{where} {sid}: Resource '*'")
    return problems


# ---------------------------------------------------------------------------- the checks

def check_template(rep, path, docs_dir):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        t = yaml.load(text, Loader=CfnLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        rep.check("template.yaml parses as YAML with the CloudFormation tags", [str(e)])
        return
    rep.check("template.yaml parses as YAML with the CloudFormation tags",
              [] if isinstance(t, dict) else ["not a mapping"])
    if not isinstance(t, dict):
        return

    params = t.get("Parameters") or {}
    resources = t.get("Resources") or {}
    conditions = t.get("Conditions") or {}
    mappings = t.get("Mappings") or {}
    outputs = t.get("Outputs") or {}
    rules = t.get("Rules") or {}
    rep.check("template has a version, a description, parameters, resources and outputs",
              [k for k in ("AWSTemplateFormatVersion", "Description", "Parameters", "Resources",
                           "Outputs") if k not in t]
              + (["a Transform is used (plain CloudFormation expected)"] if "Transform" in t
                 else []))

    def of_type(type_name):
        return {k: v for k, v in resources.items() if v.get("Type") == type_name}

    # --- references
    problems = []
    known = set(params) | set(resources) | PSEUDO
    for section_name in ("Resources", "Outputs", "Conditions", "Rules", "Metadata"):
        section = t.get(section_name) or {}
        for where, n in walk(section, section_name):
            if not isinstance(n, dict):
                continue
            for k, v in n.items():
                if k == "Ref":
                    if not isinstance(v, str):
                        problems.append(f"{where}: Ref of {v!r}")
                    elif v not in known:
                        problems.append(f"{where}: Ref {v} names nothing")
                    elif section_name in ("Conditions", "Rules") and v in resources:
                        problems.append(f"{where}: Ref {v}: a {section_name[:-1]} may only "
                                        "name parameters")
                elif k == "Fn::GetAtt":
                    if not (isinstance(v, list) and len(v) == 2 and v[0] in resources):
                        problems.append(f"{where}: GetAtt {v!r} names no resource")
                elif k == "Fn::Sub":
                    names, variables = sub_names(v)
                    for name in names:
                        base = name.split(".")[0]
                        if "." in name and base not in resources:
                            problems.append(f"{where}: Sub ${{{name}}} names no resource")
                        elif base not in known:
                            problems.append(f"{where}: Sub ${{{name}}} names nothing")
                    if isinstance(variables, dict):
                        for var in variables:
                            if var in known:
                                problems.append(f"{where}: Sub variable {var} hides a name")
                elif k == "Fn::If":
                    if not (isinstance(v, list) and len(v) == 3 and v[0] in conditions):
                        problems.append(f"{where}: If on {v[0] if isinstance(v, list) else v!r}:"
                                        " no such condition")
                elif k == "Condition" and section_name in ("Conditions", "Rules") \
                        and isinstance(v, str) and v not in conditions:
                    problems.append(f"{where}: Condition {v} names no condition")
                elif k == "Fn::FindInMap" and isinstance(v, list) and isinstance(v[0], str) \
                        and v[0] not in mappings:
                    problems.append(f"{where}: FindInMap {v[0]}: no such mapping")
    for name, r in resources.items():
        deps = r.get("DependsOn", [])
        for d in deps if isinstance(deps, list) else [deps]:
            if d not in resources:
                problems.append(f"Resources/{name}: DependsOn {d} names no resource")
        if "Condition" in r and r["Condition"] not in conditions:
            problems.append(f"Resources/{name}: Condition {r['Condition']} names no condition")
    for name, o in outputs.items():
        if "Condition" in o and o["Condition"] not in conditions:
            problems.append(f"Outputs/{name}: Condition {o['Condition']} names no condition")
    rep.check("every Ref, GetAtt, Sub ${...}, If, Condition and DependsOn names something that "
              "exists", problems)

    used = set()
    for section_name in ("Resources", "Outputs", "Conditions", "Rules"):
        used |= refs_of(t.get(section_name) or {})
    rep.check("every parameter is used and has a description",
              [f"{p}: never used" for p in params if p not in used]
              + [f"{p}: no Description" for p, v in params.items()
                 if not (isinstance(v, dict) and str(v.get("Description", "")).strip())]
              + [f"{p}: no Type" for p, v in params.items() if "Type" not in v])
    rep.check("every condition is used",
              [c for c in conditions
               if not any(isinstance(n, dict) and (
                   (isinstance(n.get("Fn::If"), list) and n["Fn::If"][0] == c)
                   or n.get("Condition") == c)
                   for _, n in walk({"r": resources, "o": outputs, "c": conditions}))])

    iface = (t.get("Metadata") or {}).get("AWS::CloudFormation::Interface") or {}
    grouped = [p for g in iface.get("ParameterGroups", []) for p in g.get("Parameters", [])]
    rep.check("Metadata AWS::CloudFormation::Interface groups every parameter once",
              [f"{p}: in no group" for p in params if p not in grouped]
              + [f"{p}: no such parameter" for p in grouped if p not in params]
              + [f"{p}: in several groups" for p in set(grouped) if grouped.count(p) > 1])

    # --- dependency cycles among resources (Ref, GetAtt, Sub, DependsOn)
    graph = {}
    for name, r in resources.items():
        deps = r.get("DependsOn", [])
        deps = set(deps if isinstance(deps, list) else [deps])
        deps |= {x for x in refs_of(r.get("Properties", {})) if x in resources}
        graph[name] = deps
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for d in sorted(graph.get(node, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    rep.check("no circular dependency between resources", cycles)

    # --- IAM
    problems = []
    for name, r in resources.items():
        props = r.get("Properties", {})
        typ = r.get("Type")
        if typ == "AWS::IAM::Role":
            for pol in as_list(props.get("Policies", [])):
                problems += statement_problems(f"{name}/{pol.get('PolicyName')}",
                                               pol.get("PolicyDocument"))
            for arn in as_list(props.get("ManagedPolicyArns", [])):
                problems.append(f"{name}: managed policy {arn!r} (write the statements instead)")
        elif typ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            problems += statement_problems(name, props.get("PolicyDocument"))
        elif typ in ("AWS::IAM::User", "AWS::IAM::Group"):
            for pol in as_list(props.get("Policies", [])):
                problems += statement_problems(f"{name}/{pol.get('PolicyName')}",
                                               pol.get("PolicyDocument"))
    rep.check("IAM policies of the template name their actions and resources (no '*', no "
              "'service:*', no managed policies)", problems)

    # --- buckets
    buckets = of_type("AWS::S3::Bucket")
    rep.check("two buckets (source and destination)",
              [] if len(buckets) >= 2 else [f"{len(buckets)} bucket(s)"])
    bucket_policies = of_type("AWS::S3::BucketPolicy")
    for name, b in buckets.items():
        props = b.get("Properties", {})
        problems = []
        sse = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        rules_ = as_list(sse)
        if not rules_:
            problems.append("no BucketEncryption")
        for rule in rules_:
            algo = rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
            algos = [a for a in branches(algo)]
            if not algos or any(a not in ("AES256", "aws:kms", "aws:kms:dsse") for a in algos):
                problems.append(f"SSEAlgorithm {algo!r}")
            if "aws:kms" in algos and not rule.get("BucketKeyEnabled"):
                problems.append("SSE-KMS without BucketKeyEnabled")
        rep.check(f"bucket {name} is encrypted by default", problems)

        pab = props.get("PublicAccessBlockConfiguration", {})
        rep.check(f"bucket {name} blocks public access (all four settings)",
                  [f"{k} is not true" for k in ("BlockPublicAcls", "BlockPublicPolicy",
                                                "IgnorePublicAcls", "RestrictPublicBuckets")
                   if pab.get(k) is not True])

        owner = [r_.get("ObjectOwnership") for r_ in
                 as_list(props.get("OwnershipControls", {}).get("Rules", []))]
        rep.check(f"bucket {name} has ObjectOwnership BucketOwnerEnforced (no ACLs)",
                  [] if owner == ["BucketOwnerEnforced"] else [f"ObjectOwnership {owner}"])

        lc = as_list(props.get("LifecycleConfiguration", {}).get("Rules", []))
        ok = any(r_.get("Status") == "Enabled" and str(r_.get("AbortIncompleteMultipartUpload", {})
                                                      .get("DaysAfterInitiation")) == "7"
                 and "Prefix" not in r_ and "Filter" not in r_ for r_ in lc)
        rep.check(f"bucket {name} aborts incomplete multipart uploads after 7 days",
                  [] if ok else ["no enabled whole-bucket AbortIncompleteMultipartUpload rule of 7 "
                                 "days"])

        denies = False
        for pname, pol in bucket_policies.items():
            pprops = pol.get("Properties", {})
            if not is_ref(pprops.get("Bucket"), name):
                continue
            for st in as_list(pprops.get("PolicyDocument", {}).get("Statement", [])):
                cond = st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
                res = as_list(st.get("Resource", []))
                covers_objects = any(isinstance(x, dict) and "Fn::Sub" in x
                                     and str(x["Fn::Sub"]).endswith("/*") for x in res)
                covers_bucket = any(isinstance(x, dict) and x.get("Fn::GetAtt") == [name, "Arn"]
                                    for x in res)
                if st.get("Effect") == "Deny" and st.get("Principal") in ("*", {"AWS": "*"}) \
                        and str(cond).lower() == "false" and covers_objects and covers_bucket:
                    denies = True
        rep.check(f"bucket {name} has a policy denying requests without TLS "
                  "(aws:SecureTransport false)",
                  [] if denies else ["no Deny statement on aws:SecureTransport = false covering "
                                     "the bucket and its objects"])

    # --- source bucket: trigger, permission, no circular reference
    sources = {k: v for k, v in buckets.items()
               if v.get("Properties", {}).get("NotificationConfiguration")}
    rep.check("one bucket (the source) has a notification configuration",
              [] if len(sources) == 1 else [f"{len(sources)} buckets have one"])
    functions = of_type("AWS::Lambda::Function")
    rep.check("one function", [] if len(functions) == 1 else [f"{len(functions)} functions"])
    if len(sources) != 1 or len(functions) != 1:
        return
    src_name, src = next(iter(sources.items()))
    fn_name, fn = next(iter(functions.items()))
    dst_names = [k for k in buckets if k != src_name]
    fprops = fn.get("Properties", {})

    problems = []
    lcs = as_list(src["Properties"]["NotificationConfiguration"].get("LambdaConfigurations", []))
    matching = [c for c in lcs if c.get("Event") == "s3:ObjectCreated:*"
                and c.get("Function") == {"Fn::GetAtt": [fn_name, "Arn"]}]
    if not matching:
        problems.append("no LambdaConfiguration of s3:ObjectCreated:* to the function")
    for c in matching:
        filt = c.get("Filter")
        found = False
        for alt in branches(filt):
            for rule in as_list((alt.get("S3Key") or {}).get("Rules", [])):
                if str(rule.get("Name")).lower() == "prefix" and is_ref(rule.get("Value"),
                                                                        "SourcePrefix"):
                    found = True
        if not found:
            problems.append("the notification does not filter on prefix = !Ref SourcePrefix")
    rep.check(f"{src_name} invokes the function for s3:ObjectCreated:* under SourcePrefix",
              problems)

    perms = {k: v for k, v in of_type("AWS::Lambda::Permission").items()
             if mentions(v.get("Properties", {}).get("FunctionName"), fn_name)
             and v.get("Properties", {}).get("Principal") == "s3.amazonaws.com"}
    problems = []
    if len(perms) != 1:
        problems.append(f"{len(perms)} permissions for s3.amazonaws.com on the function")
    for pname, p in perms.items():
        pp = p.get("Properties", {})
        if pp.get("Action") != "lambda:InvokeFunction":
            problems.append(f"{pname}: Action {pp.get('Action')!r}")
        if not is_ref(pp.get("SourceAccount"), "AWS::AccountId"):
            problems.append(f"{pname}: SourceAccount is not !Ref AWS::AccountId")
        if "SourceArn" not in pp:
            problems.append(f"{pname}: no SourceArn")
        elif src_name in refs_of(pp["SourceArn"]):
            problems.append(f"{pname}: SourceArn refers to {src_name} (circular): build it from "
                            "the bucket's name")
        elif "arn:${AWS::Partition}:s3:::" not in json.dumps(pp["SourceArn"]):
            problems.append(f"{pname}: SourceArn is not an S3 bucket ARN built with !Sub")
        deps = src.get("DependsOn", [])
        if pname not in (deps if isinstance(deps, list) else [deps]):
            problems.append(f"{src_name} does not DependsOn {pname}")
    rep.check("the S3 invoke permission has SourceAccount and SourceArn (by name) and the source "
              "bucket waits for it", problems)

    # --- function
    problems = []
    if fprops.get("PackageType") != "Image":
        problems.append("PackageType is not Image")
    if not is_ref(fprops.get("Code", {}).get("ImageUri"), "ImageUri"):
        problems.append("Code.ImageUri is not !Ref ImageUri")
    if not any(is_ref(a, "Architecture") for a in as_list(fprops.get("Architectures", []))):
        problems.append("Architectures is not [!Ref Architecture]")
    for prop, param in (("MemorySize", "MemorySize"), ("Timeout", "Timeout")):
        if not is_ref(fprops.get(prop), param):
            problems.append(f"{prop} is not !Ref {param}")
    rc = fprops.get("ReservedConcurrentExecutions")
    if not (isinstance(rc, dict) and "Fn::If" in rc and mentions(rc, "ReservedConcurrency")):
        problems.append("ReservedConcurrentExecutions is not an !If on ReservedConcurrency")
    arch = params.get("Architecture", {})
    if sorted(arch.get("AllowedValues", [])) != ["arm64", "x86_64"]:
        problems.append("parameter Architecture does not allow exactly x86_64 and arm64")
    rep.check("the function is a container image with the sizing parameters", problems)

    env = (fprops.get("Environment") or {}).get("Variables") or {}
    problems = []
    need = {"S3IMGFS_SOURCE_BUCKET", "S3IMGFS_DESTINATION_BUCKET", "S3IMGFS_SOURCE_PREFIX",
            "S3IMGFS_SIZES", "S3IMGFS_SNS_TOPIC_ARN", "S3IMGFS_LOG_FORMAT"}
    problems += [f"{v} is not set" for v in sorted(need - set(env))]
    if env.get("S3IMGFS_LOG_FORMAT") != "json":
        problems.append("S3IMGFS_LOG_FORMAT is not json")
    if src_name in refs_of(env):
        problems.append(f"the environment refers to {src_name} (circular): use its name")
    sizes_default = params.get("Sizes", {}).get("Default")
    if sizes_default != "thumbnail:150x150:cover, medium:640x640, large:1280x1280":
        problems.append(f"Sizes default {sizes_default!r} is not the project's default")
    if not is_ref(env.get("S3IMGFS_SIZES"), "Sizes"):
        problems.append("S3IMGFS_SIZES is not !Ref Sizes")
    rep.check("the function's environment maps to the s3imgfs configuration", problems)

    # The names env.c accepts: S3IMGFS_<KEY>, S3IMGFS_<SECTION>_<KEY> for a key name an earlier
    # section has; no [gateway] keys, no [resize] mode, no secrets (docs/config.md's tables).
    config_md = os.path.join(docs_dir, "config.md")
    if os.path.exists(config_md):
        valid, seen = set(), set()
        section = None
        with open(config_md, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^## \[(\w+)\]", line)
                if m:
                    section = m.group(1)
                    continue
                if line.startswith("## "):
                    section = None
                m = re.match(r"^\| `(\w+)` \| ([^|]*)\|", line)
                if not section or not m:
                    continue
                key, typ = m.group(1), m.group(2).strip()
                name = f"S3IMGFS_{section.upper()}_{key.upper()}" if key in seen \
                    else f"S3IMGFS_{key.upper()}"
                seen.add(key)
                if section == "gateway" or (section, key) == ("resize", "mode") \
                        or typ == "secret" or key == "webhook_secret":
                    continue
                valid.add(name)
        rep.check("every S3IMGFS_* variable is a setting the function accepts (docs/config.md, "
                  "lambda/env.c naming)",
                  [f"{v}: not a setting (the function refuses unknown S3IMGFS_* variables)"
                   for v in sorted(env) if v.startswith("S3IMGFS_") and v not in valid]
                  + ([] if valid else ["no keys found in docs/config.md"]))
    else:
        rep.skip("every S3IMGFS_* variable is a setting the function accepts",
                 f"{config_md} not found")

    # --- async invocation: retries and the dead-letter queue
    queues = of_type("AWS::SQS::Queue")
    eics = {k: v for k, v in of_type("AWS::Lambda::EventInvokeConfig").items()
            if mentions(v.get("Properties", {}).get("FunctionName"), fn_name)}
    problems = []
    dlq_name = None
    if len(eics) != 1:
        problems.append(f"{len(eics)} EventInvokeConfig for the function")
    for ename, e in eics.items():
        ep = e.get("Properties", {})
        dest = ((ep.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if isinstance(dest, dict) and dest.get("Fn::GetAtt", [None])[0] in queues \
                and dest["Fn::GetAtt"][1] == "Arn":
            dlq_name = dest["Fn::GetAtt"][0]
        else:
            problems.append(f"{ename}: OnFailure destination is not the Arn of an SQS queue")
        if str(ep.get("MaximumRetryAttempts")) != "2":
            problems.append(f"{ename}: MaximumRetryAttempts is not 2")
        if "MaximumEventAgeInSeconds" not in ep:
            problems.append(f"{ename}: no MaximumEventAgeInSeconds")
        if ep.get("Qualifier") != "$LATEST":
            problems.append(f"{ename}: Qualifier is not $LATEST")
    if dlq_name:
        qp = queues[dlq_name].get("Properties", {})
        if qp.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in qp:
            problems.append(f"{dlq_name}: not encrypted (SqsManagedSseEnabled)")
        if "MessageRetentionPeriod" not in qp:
            problems.append(f"{dlq_name}: no MessageRetentionPeriod")
    rep.check("failed asynchronous events go to an encrypted SQS dead-letter queue after 2 "
              "retries", problems)

    # --- log group
    problems = []
    groups = of_type("AWS::Logs::LogGroup")
    fn_groups = [k for k, v in groups.items()
                 if "/aws/lambda/${FunctionName}" in json.dumps(
                     v.get("Properties", {}).get("LogGroupName"))]
    if len(fn_groups) != 1:
        problems.append("no log group named /aws/lambda/${FunctionName}")
    for g in fn_groups:
        if "RetentionInDays" not in groups[g].get("Properties", {}):
            problems.append(f"{g}: no RetentionInDays")
        if g not in graph[fn_name]:
            problems.append(f"{g}: the function neither DependsOn nor refers to it (it could "
                            "create the group itself first)")
    if not is_ref(fprops.get("FunctionName"), "FunctionName"):
        problems.append("the function's FunctionName is not !Ref FunctionName")
    rep.check("the function's log group exists first, with a retention", problems)

    # --- role
    roles = of_type("AWS::IAM::Role")
    role_ref = fprops.get("Role")
    role_name = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
    problems = []
    if role_name not in roles:
        problems.append("the function's Role is not !GetAtt of a role of the template")
        rep.check("the function's role allows exactly what the function needs", problems)
        return
    stmts = []
    rprops = roles[role_name].get("Properties", {})
    for pol in as_list(rprops.get("Policies", [])):
        stmts += as_list(pol.get("PolicyDocument", {}).get("Statement", []))
    for pname, pol in of_type("AWS::IAM::Policy").items():
        pp = pol.get("Properties", {})
        if any(is_ref(x, role_name) for x in as_list(pp.get("Roles", []))):
            stmts += as_list(pp.get("PolicyDocument", {}).get("Statement", []))

    def allowed(action):
        return [st for st in stmts if st.get("Effect") == "Allow"
                and action in as_list(st.get("Action", []))]

    def resources_of(sts):
        return [json.dumps(r) for st in sts for r in as_list(st.get("Resource", []))]

    get = resources_of(allowed("s3:GetObject"))
    if not any(src_name in r and "${SourcePrefix}*" in r for r in get):
        problems.append("no s3:GetObject on the source objects under SourcePrefix")
    for d in dst_names:
        if not any(d in r for r in resources_of(allowed("s3:PutObject"))):
            problems.append(f"no s3:PutObject on {d} objects")
        if not any(d in r for r in get):
            problems.append(f"no s3:GetObject on {d} objects (HEAD of renditions)")
    topics = of_type("AWS::SNS::Topic")
    topic_name = next(iter(topics), None)
    sns = resources_of(allowed("sns:Publish"))
    if not sns or any(json.dumps({"Ref": topic_name}) != r for r in sns):
        problems.append(f"sns:Publish not only on the topic: {sns}")
    logs = resources_of(allowed("logs:PutLogEvents"))
    if not logs or any(fn_groups and fn_groups[0] not in r for r in logs):
        problems.append(f"logs:PutLogEvents not only on the function's log group: {logs}")
    if not allowed("logs:CreateLogStream"):
        problems.append("no logs:CreateLogStream")
    if allowed("logs:CreateLogGroup"):
        problems.append("logs:CreateLogGroup allowed (the stack creates the group)")
    if dlq_name and not any(dlq_name in r for r in resources_of(allowed("sqs:SendMessage"))):
        problems.append("no sqs:SendMessage on the dead-letter queue")
    kms = [st for st in stmts if any(str(a).startswith("kms:") for a in as_list(st.get("Action")))]
    if "KmsKeyArn" in params:
        raw = [x for pol in as_list(rprops.get("Policies", []))
               for x in pol.get("PolicyDocument", {}).get("Statement", [])]
        for pol in of_type("AWS::IAM::Policy").values():
            raw += pol.get("Properties", {}).get("PolicyDocument", {}).get("Statement", [])
        kms_ok = any(isinstance(x, dict) and "Fn::If" in x and x["Fn::If"][0] in conditions
                     and any(isinstance(b, dict) and is_ref(b.get("Resource"), "KmsKeyArn")
                             for b in branches(x))
                     for x in raw)
        if not kms_ok:
            problems.append("no kms statement on !Ref KmsKeyArn under a condition")
        for st in kms:
            if not is_ref(st.get("Resource"), "KmsKeyArn"):
                problems.append(f"kms actions on {st.get('Resource')!r}")
    rep.check("the function's role allows exactly what the function needs", problems)

    # --- topic
    problems = []
    if len(topics) != 1:
        problems.append(f"{len(topics)} topics")
    if topic_name and not is_ref(env.get("S3IMGFS_SNS_TOPIC_ARN"), topic_name):
        problems.append("S3IMGFS_SNS_TOPIC_ARN is not !Ref of the topic")
    if topic_name and not mentions(topics[topic_name].get("Properties", {}).get("KmsMasterKeyId"),
                                   "KmsKeyArn"):
        problems.append("the topic is not encrypted with KmsKeyArn when given")
    tps = [v for v in of_type("AWS::SNS::TopicPolicy").values()
           if any(is_ref(x, topic_name) for x in as_list(v.get("Properties", {}).get("Topics")))]
    if len(tps) != 1:
        problems.append("no topic policy")
    else:
        principals = []
        for st in as_list(tps[0]["Properties"].get("PolicyDocument", {}).get("Statement", [])):
            if st.get("Effect") != "Allow":
                continue
            if as_list(st.get("Action")) != ["sns:Publish"]:
                problems.append(f"topic policy allows {st.get('Action')!r}")
            principals.append(json.dumps(st.get("Principal")))
        if not any(role_name in p for p in principals):
            problems.append("the topic policy does not let the function's role publish")
        if not any("cloudwatch.amazonaws.com" in p for p in principals):
            problems.append("the topic policy does not let CloudWatch alarms publish")
        if any(p in ('"*"', '{"AWS": "*"}') for p in principals):
            problems.append("the topic policy allows anyone")
    subs = of_type("AWS::SNS::Subscription")
    if not any(v.get("Properties", {}).get("Protocol") == "email" and v.get("Condition")
               and is_ref(v["Properties"].get("Endpoint"), "NotificationEmail")
               for v in subs.values()):
        problems.append("no conditional e-mail subscription to !Ref NotificationEmail")
    rep.check("the topic: encrypted with the key when given, published to by the function and the "
              "alarms only, optional e-mail subscription", problems)

    # --- alarms
    alarms = of_type("AWS::CloudWatch::Alarm")

    def metric_of(props):
        found = []
        if "MetricName" in props:
            found.append((props.get("Namespace"), props["MetricName"], props.get("Dimensions", [])))
        for m in as_list(props.get("Metrics", [])):
            ms = (m.get("MetricStat") or {}).get("Metric") or {}
            if "MetricName" in ms:
                found.append((ms.get("Namespace"), ms["MetricName"], ms.get("Dimensions", [])))
        return found

    wanted = [("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"), ("AWS/Lambda", "Duration"),
              ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("s3imgfs", "ResizeFailures")]
    for ns, metric in wanted:
        problems = []
        hits = [(k, v) for k, v in alarms.items()
                if any(m[0] == ns and m[1] == metric for m in metric_of(v.get("Properties", {})))]
        if not hits:
            problems.append("no alarm")
        for k, v in hits:
            ap = v.get("Properties", {})
            if not any(is_ref(a, topic_name) for a in as_list(ap.get("AlarmActions", []))):
                problems.append(f"{k}: AlarmActions do not notify the topic")
            if ap.get("TreatMissingData") != "notBreaching":
                problems.append(f"{k}: TreatMissingData is not notBreaching")
            dims = [d for m in metric_of(ap) for d in as_list(m[2])]
            if ns == "AWS/Lambda" and not any(d.get("Name") == "FunctionName"
                                              and mentions(d.get("Value"), fn_name)
                                              for d in dims):
                problems.append(f"{k}: not on the function's FunctionName")
            if ns == "AWS/SQS" and not any(mentions(d.get("Value"), dlq_name or "?")
                                           for d in dims):
                problems.append(f"{k}: not on the dead-letter queue")
            if ns == "s3imgfs" and not any(
                    d.get("Name") == "Service" and (is_ref(d.get("Value"), src_name)
                                                    or mentions(d.get("Value"), "SourceBucketName"))
                    for d in dims):
                problems.append(f"{k}: dimension Service is not the source bucket's name")
            if metric == "Duration":
                expr = json.dumps(ap.get("Metrics", ""))
                if "${Timeout}" not in expr or ap.get("Threshold") not in (80, "80"):
                    problems.append(f"{k}: not 80% of the Timeout parameter")
            elif str(ap.get("Threshold")) not in ("0", "0.0") \
                    or ap.get("ComparisonOperator") != "GreaterThanThreshold":
                problems.append(f"{k}: not > 0")
        rep.check(f"an alarm on {ns} {metric} notifies the topic", problems)

    # --- outputs
    problems = []
    out_refs = {name: refs_of(o.get("Value")) for name, o in outputs.items()}
    everything = set().union(*out_refs.values()) if out_refs else set()
    for what, name in [("the source bucket", src_name), ("the topic", topic_name),
                       ("the function", fn_name), ("the dead-letter queue", dlq_name),
                       ("the log group", fn_groups[0] if fn_groups else None)] + \
            [("the destination bucket", d) for d in dst_names]:
        if name not in everything:
            problems.append(f"no output gives {what}")
    if not any(o.get("Value") == {"Fn::GetAtt": [fn_name, "Arn"]} for o in outputs.values()):
        problems.append("no output gives the function's ARN")
    if dlq_name and not any(is_ref(o.get("Value"), dlq_name) for o in outputs.values()):
        problems.append("no output gives the dead-letter queue's URL (!Ref)")
    problems += [f"output {k}: no Description" for k, o in outputs.items()
                 if not o.get("Description")]
    rep.check("outputs give the buckets, the topic, the function (name and ARN), the "
              "dead-letter queue URL and the log group", problems)

    # --- parameters: constraints and defaults
    problems = []
    for p, v in params.items():
        if v.get("Type") == "String" and not (v.get("AllowedPattern") or v.get("AllowedValues")):
            problems.append(f"{p}: a String without AllowedPattern or AllowedValues")
        if v.get("Type") == "Number" and not (("MinValue" in v and "MaxValue" in v)
                                              or v.get("AllowedValues")):
            problems.append(f"{p}: a Number without MinValue/MaxValue or AllowedValues")
        if "Default" in v and v.get("AllowedPattern"):
            if not re.fullmatch(v["AllowedPattern"], str(v["Default"])):
                problems.append(f"{p}: the default {v['Default']!r} does not match "
                                f"AllowedPattern")
        if "Default" in v and v.get("AllowedValues") and v["Default"] not in v["AllowedValues"]:
            problems.append(f"{p}: the default is not among AllowedValues")
    rep.check("parameters are constrained and their defaults are valid", problems)

    # --- ImageUri pattern against what build-image.sh prints
    pat = params.get("ImageUri", {}).get("AllowedPattern", "")
    samples = ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/s3imgfs-lambda@sha256:" + "ab" * 32,
               "123456789012.dkr.ecr.us-east-1.amazonaws.com/s3imgfs-lambda:1a2b3c4-x86_64-"
               "20260101T120000Z"]
    bad = ["docker.io/library/debian:12", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x@sha256:z"]
    rep.check("ImageUri accepts what build-image.sh prints and refuses other registries",
              [f"refuses {s}" for s in samples if not re.fullmatch(pat, s)]
              + [f"accepts {s}" for s in bad if re.fullmatch(pat, s)])


def check_gateway_policy(rep, path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        rep.check("iam-gateway-policy.json is valid JSON", [str(e)])
        return
    rep.check("iam-gateway-policy.json is valid JSON", [])
    problems = statement_problems("iam-gateway-policy.json", doc)
    if doc.get("Version") != "2012-10-17":
        problems.append("Version is not 2012-10-17")
    rep.check("the gateway policy names its actions and resources (no '*', no 'service:*')",
              problems)

    def grants(action, resource):
        for st in doc.get("Statement", []):
            acts = st.get("Action", [])
            res = st.get("Resource", [])
            acts = [acts] if isinstance(acts, str) else acts
            res = [res] if isinstance(res, str) else res
            if st.get("Effect") == "Allow" and action in acts and resource in res:
                return True
        return False

    need = [("s3:ListBucket", "arn:aws:s3:::SOURCE_BUCKET"),
            ("s3:ListBucket", "arn:aws:s3:::DESTINATION_BUCKET"),
            ("s3:ListBucketMultipartUploads", "arn:aws:s3:::SOURCE_BUCKET"),
            ("sns:Publish", "TOPIC_ARN")]
    for bucket in ("SOURCE_BUCKET", "DESTINATION_BUCKET"):
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                       "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"):
            need.append((action, f"arn:aws:s3:::{bucket}/*"))
    rep.check("the gateway policy grants what s3imgfs does (list, get/put/delete, multipart, "
              "publish) on SOURCE_BUCKET, DESTINATION_BUCKET and TOPIC_ARN",
              [f"no {a} on {r}" for a, r in need if not grants(a, r)])


def check_image_files(rep, deploy_dir):
    df_path = os.path.join(deploy_dir, "Dockerfile")
    try:
        with open(df_path, encoding="utf-8") as f:
            df = f.read()
    except OSError as e:
        rep.check("Dockerfile exists", [str(e)])
        return
    lines = [ln for ln in df.splitlines() if not ln.lstrip().startswith("#")]
    body = "\n".join(lines)
    problems = []
    froms = re.findall(r"^FROM\s+(\S+)", body, re.M)
    base = re.search(r"^ARG\s+DEBIAN_IMAGE=(\S+)", body, re.M)
    if len(froms) < 2:
        problems.append("not a multi-stage build")
    if not base or base.group(1) != "debian:12-slim":
        problems.append("the base is not debian:12-slim")
    for pkg in ("libvips42", "libcurl4", "libjansson4", "libinih1", "libmicrohttpd12",
                "ca-certificates"):
        if not re.search(rf"\b{re.escape(pkg)}\b", body):
            problems.append(f"the runtime does not install {pkg}")
    stages = re.split(r"^FROM\s", body, flags=re.M)
    runtime = stages[-1] if len(stages) > 2 else ""
    if re.search(r"\S+-dev\b", runtime) or "build-essential" in runtime:
        problems.append("the runtime stage installs build packages")
    if "COPY --from=" not in runtime:
        problems.append("the runtime stage does not copy the binary from the builder")
    if "-Dtests=disabled" not in body or "ninja -C" not in body or "lambda/s3imgfs-lambda" \
            not in body:
        problems.append("the builder does not run meson -Dtests=disabled and ninja "
                        "lambda/s3imgfs-lambda")
    if not re.search(r'^ENTRYPOINT \["/var/runtime/bootstrap"\]', body, re.M):
        problems.append('no ENTRYPOINT ["/var/runtime/bootstrap"]')
    user = re.findall(r"^USER\s+(\S+)", body, re.M)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        problems.append("does not run as a non-root USER")
    if "MALLOC_ARENA_MAX=1" not in body:
        problems.append("no ENV MALLOC_ARENA_MAX=1")
    if "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" not in body:
        problems.append("no ENV GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
    rep.check("Dockerfile: two Debian 12 stages, runtime libraries only, bootstrap entry point, "
              "non-root", problems)

    options_path = os.path.join(deploy_dir, "..", "meson_options.txt")
    if os.path.exists(options_path):
        with open(options_path, encoding="utf-8") as f:
            opts = set(re.findall(r"option\('(\w+)'", f.read()))
        used = set(re.findall(r"-D(\w+)=", body)) - {"werror", "buildtype", "b_ndebug",
                                                     "optimization", "debug", "strip"}
        rep.check("the Dockerfile's meson -D options exist in meson_options.txt",
                  [f"-D{o}: no such option" for o in sorted(used - opts)])

    sh = os.path.join(deploy_dir, "build-image.sh")
    problems = []
    if not os.access(sh, os.X_OK):
        problems.append("build-image.sh is not executable")
    with open(sh, encoding="utf-8") as f:
        script = f.read()
    if "set -euo pipefail" not in script:
        problems.append("no set -euo pipefail")
    code = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("#"))
    for needle in ("--provenance=false", "ecr create-repository", "get-login-password",
                   "describe-images", "buildx build"):
        if needle not in code:
            problems.append(f"does not use {needle}")
    r = subprocess.run(["bash", "-n", sh], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        problems.append("bash -n: " + r.stderr.strip())
    r = subprocess.run(["bash", sh, "-h"], capture_output=True, text=True, check=False,
                       env={"PATH": "/usr/bin:/bin"})
    if r.returncode != 0 or "Usage:" not in r.stdout:
        problems.append("-h does not print the usage")
    rep.check("build-image.sh: strict mode, buildx without attestations, ECR repository, login, "
              "digest", problems)


def main():
    if len(sys.argv) != 2:
        print("usage: check_deploy.py DEPLOY_DIR", file=sys.stderr)
        return 2
    deploy_dir = sys.argv[1]
    docs_dir = os.path.join(deploy_dir, "..", "docs")
    rep = Report()
    check_template(rep, os.path.join(deploy_dir, "template.yaml"), docs_dir)
    check_gateway_policy(rep, os.path.join(deploy_dir, "iam-gateway-policy.json"))
    check_image_files(rep, deploy_dir)
    readme = os.path.join(deploy_dir, "README.md")
    rep.check("deploy/README.md exists", [] if os.path.exists(readme) else ["missing"])
    print(f"1..{rep.n}")
    if rep.failed:
        print(f"# {rep.failed} of {rep.n} checks failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
