#!/usr/bin/python3
"""A small SNS/SQS client for the tests, talking to fauxqs (which checks no signatures).

  fauxqs_client.py setup ENDPOINT TOPIC QUEUE
      creates the topic and the queue and subscribes the queue to the topic (SNS envelope, not
      raw delivery, so that Subject and MessageAttributes arrive); prints "TOPIC_ARN QUEUE_URL".
  fauxqs_client.py receive ENDPOINT QUEUE_URL OUT COUNT SECONDS
      receives (and deletes) messages until COUNT have arrived or SECONDS passed, appending each
      SNS envelope as one JSON line to OUT; prints how many arrived. With COUNT 0 it waits the
      whole time (to prove that no more come).

SNS speaks the Query protocol (form POST), SQS in fauxqs 1.9.2 only the JSON protocol.
"""
import json
import sys
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET


def sns(endpoint, action, **params):
    body = urllib.parse.urlencode({"Action": action, "Version": "2010-03-31", **params}).encode()
    req = urllib.request.Request(endpoint + "/", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return ET.fromstring(r.read())


def sqs(endpoint, action, payload):
    req = urllib.request.Request(endpoint + "/", data=json.dumps(payload).encode(), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS." + action})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else {}


def find(tree, name):
    for el in tree.iter():
        if el.tag.rsplit("}", 1)[-1] == name:
            return el.text
    raise SystemExit(f"no {name} in the answer")


def setup(endpoint, topic, queue):
    topic_arn = find(sns(endpoint, "CreateTopic", Name=topic), "TopicArn")
    queue_url = sqs(endpoint, "CreateQueue", {"QueueName": queue})["QueueUrl"]
    attrs = sqs(endpoint, "GetQueueAttributes", {"QueueUrl": queue_url,
                                                 "AttributeNames": ["QueueArn"]})
    sns(endpoint, "Subscribe", TopicArn=topic_arn, Protocol="sqs",
        Endpoint=attrs["Attributes"]["QueueArn"])
    print(topic_arn, queue_url)


def receive(endpoint, queue_url, out, count, seconds):
    deadline = time.time() + seconds
    got = 0
    with open(out, "a", encoding="utf-8") as f:
        while time.time() < deadline and (count == 0 or got < count):
            wait = max(1, min(5, int(deadline - time.time())))
            r = sqs(endpoint, "ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": 10,
                                                 "WaitTimeSeconds": wait})
            for m in r.get("Messages", []):
                f.write(json.dumps(json.loads(m["Body"])) + "\n")
                got += 1
                sqs(endpoint, "DeleteMessage", {"QueueUrl": queue_url,
                                                "ReceiptHandle": m["ReceiptHandle"]})
    print(got)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "setup":
        setup(*sys.argv[2:])
    elif len(sys.argv) == 7 and sys.argv[1] == "receive":
        receive(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
