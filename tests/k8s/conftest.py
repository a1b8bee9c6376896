"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager.

Built by `make tools` into .tools/bin (see docs/testing-k8s.md). Everything listens on 127.0.0.1
free ports and lives in one temp dir; the PKI (CA, serving cert, client certs, service-account
key) is generated per session. There is no kubelet or scheduler: Pods are created and stay
Pending, which is all the operator tests need (controllers still create ReplicaSets, Pods, ...).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "bin"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")  # env puts the last two on PATH
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
STARTUP_TIMEOUT_S = 120.0  # cold start on 2 shared cores: etcd ~1 s, apiserver ~10-30 s

# --- PKI -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    cn: str,
    *,
    orgs: tuple[str, ...] = (),
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA (issuer=None) or a leaf signed by `issuer`; server_* make it a serving cert."""
    key = ec.generate_private_key(ec.SECP256R1())  # EC: key generation is instant, RSA is not
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names or server_ips else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server_names or server_ips:
        sans = [x509.DNSName(n) for n in server_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


@dataclass(frozen=True)
class Pki:
    ca: Pem
    apiserver: Pem
    admin: Pem  # group system:masters: bypasses RBAC
    controller_manager: Pem  # user system:kube-controller-manager: bootstrap RBAC grants its rights
    service_account: Pem  # cert field holds the public key: the apiserver verifies tokens with it


def make_pki() -> Pki:
    ca = _issue("cobstack-test-ca")
    service_ip = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))  # the `kubernetes` Service
    apiserver = _issue(
        "kube-apiserver",
        issuer=ca,
        server_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                      "kubernetes.default.svc.cluster.local"),
        server_ips=("127.0.0.1", service_ip),
    )
    admin = _issue("cobstack-test-admin", orgs=("system:masters",), issuer=ca)
    kcm = _issue("system:kube-controller-manager", issuer=ca)
    sa_key = ec.generate_private_key(ec.SECP256R1())  # signs service-account tokens
    return Pki(
        ca=_pem(*ca),
        apiserver=_pem(*apiserver),
        admin=_pem(*admin),
        controller_manager=_pem(*kcm),
        service_account=Pem(sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), _pem_key(sa_key)),
    )


# --- kubeconfig ----------------------------------------------------------------------------


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, user: dict[str, str], name: str) -> Path:
    """One cluster, one user, one current context; credentials embedded (no side files)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cobstack-test", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "cobstack-test", "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _cert_user(pem: Pem) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(pem.cert).decode(),
        "client-key-data": base64.b64encode(pem.key).decode(),
    }


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            pytest.fail(f"{self.name} exited with code {self.popen.returncode}; last log lines "
                        f"({self.log}):\n{self.tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(name: str, args: list[str], workdir: Path) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen([str(TOOLS_BIN / name), *args], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=workdir)
    return Process(name, popen, log)


def wait_for(what: str, ready: Callable[[], bool], processes: list[Process],
             timeout: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for p in processes:
            p.check_alive()
        if ready():
            return
        if time.monotonic() > deadline:
            logs = "\n\n".join(f"--- {p.name} ({p.log}):\n{p.tail(15)}" for p in processes)
            pytest.fail(f"control plane: {what} not ready after {timeout:.0f} s\n{logs}")
        time.sleep(0.25)


# --- the control plane ---------------------------------------------------------------------


@dataclass
class ControlPlane:
    server: str  # https://127.0.0.1:PORT
    kubeconfig: Path  # admin (system:masters)
    ca_pem: bytes
    workdir: Path
    env: dict[str, str]  # os.environ + KUBECONFIG, .tools/bin first on PATH (for kubectl, helm)

    def api_client(self, kubeconfig: Path | None = None):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def token_kubeconfig(self, namespace: str, sa_name: str, expiration_s: int = 3600) -> Path:
        """A kubeconfig that authenticates as an existing ServiceAccount (TokenRequest API),
        so a test sees exactly the RBAC that account has."""
        from kubernetes import client

        with self.api_client() as api:
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_s)
            )
            token = client.CoreV1Api(api).create_namespaced_service_account_token(
                sa_name, namespace, request).status.token
        name = f"system:serviceaccount:{namespace}:{sa_name}"
        return write_kubeconfig(self.workdir / f"sa-{namespace}-{sa_name}.kubeconfig",
                                self.server, self.ca_pem, {"token": token}, name)


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _default_service_account_exists(plane: ControlPlane) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with plane.api_client() as api:
        try:
            client.CoreV1Api(api).read_namespaced_service_account("default", "default")
        except ApiException as e:
            if e.status == 404:
                return False
            raise
    return True


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    missing = [b for b in BINARIES if not os.access(TOOLS_BIN / b, os.X_OK)]
    if missing:
        pytest.fail(f"control-plane binaries missing: run `make tools` ({', '.join(missing)} not in {TOOLS_BIN})")

    workdir = Path(tempfile.mkdtemp(prefix="cobstack-k8s-"))
    processes: list[Process] = []
    try:
        pki = make_pki()
        certs = workdir / "pki"
        certs.mkdir()
        for name, pem in (("ca", pki.ca), ("apiserver", pki.apiserver), ("admin", pki.admin)):
            (certs / f"{name}.crt").write_bytes(pem.cert)
            (certs / f"{name}.key").write_bytes(pem.key)
        (certs / "sa.pub").write_bytes(pki.service_account.cert)
        (certs / "sa.key").write_bytes(pki.service_account.key)

        etcd_client, etcd_peer, api_port, kcm_port = (free_port() for _ in range(4))
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_client}", f"http://127.0.0.1:{etcd_peer}"
        processes.append(start("etcd", [
            "--name=test", f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            "--unsafe-no-fsync",  # throwaway data: durability only costs time here
            "--log-level=warn",
        ], workdir))
        wait_for("etcd /health", lambda: _http_ok(f"{etcd_url}/health"), processes)

        server = f"https://127.0.0.1:{api_port}"
        processes.append(start("kube-apiserver", [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--tls-cert-file={certs / 'apiserver.crt'}", f"--tls-private-key-file={certs / 'apiserver.key'}",
            f"--client-ca-file={certs / 'ca.crt'}",
            # Front-proxy (kubeadm's header names): published in kube-system/extension-apiserver-
            # authentication, which kube-controller-manager's delegated authentication reads.
            f"--requestheader-client-ca-file={certs / 'ca.crt'}", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={certs / 'sa.pub'}",
            f"--service-account-signing-key-file={certs / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",  # it would publish 127.0.0.1, which Endpoints reject
            "--profiling=false", "-v=1",
        ], workdir))
        admin_tls = ssl.create_default_context(cadata=pki.ca.cert.decode())
        admin_tls.load_cert_chain(certs / "admin.crt", certs / "admin.key")
        wait_for("kube-apiserver /readyz", lambda: _http_ok(f"{server}/readyz", admin_tls), processes)

        admin_kubeconfig = write_kubeconfig(workdir / "admin.kubeconfig", server, pki.ca.cert,
                                            _cert_user(pki.admin), "admin")
        kcm_kubeconfig = write_kubeconfig(workdir / "kcm.kubeconfig", server, pki.ca.cert,
                                          _cert_user(pki.controller_manager), "kube-controller-manager")
        processes.append(start("kube-controller-manager", [
            f"--kubeconfig={kcm_kubeconfig}",
            f"--authentication-kubeconfig={kcm_kubeconfig}", f"--authorization-kubeconfig={kcm_kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={kcm_port}",
            "--use-service-account-credentials",  # each controller acts as its own SA, as in a real cluster
            f"--service-account-private-key-file={certs / 'sa.key'}",
            f"--root-ca-file={certs / 'ca.crt'}",
            f"--cluster-signing-cert-file={certs / 'ca.crt'}", f"--cluster-signing-key-file={certs / 'ca.key'}",
            "--controllers=*", "--leader-elect=false", "-v=1",
        ], workdir))

        env = dict(os.environ, KUBECONFIG=str(admin_kubeconfig),
                   PATH=f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        plane = ControlPlane(server=server, kubeconfig=admin_kubeconfig, ca_pem=pki.ca.cert,
                             workdir=workdir, env=env)
        # The serviceaccount controller creating "default" proves kube-controller-manager is working.
        wait_for("ServiceAccount default/default", lambda: _default_service_account_exists(plane), processes)
        yield plane
    finally:
        for p in reversed(processes):
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)
