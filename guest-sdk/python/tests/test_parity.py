"""The test double tells the truth: `FakeHost` offers exactly the methods
and properties of the host a unit gets in the sandbox (`SandboxHost`, read
from the source, since it imports the component's bindings), with the same
parameters — so a unit that passes natively cannot trap on a missing
attribute inside the component. Fields only tests may touch are listed in
`testing.INSPECTION`."""

import ast
import inspect
from pathlib import Path

from junction_guest import testing
from junction_guest.testing import FakeHost

COMPONENT = Path(testing.__file__).with_name("component.py")


def sandbox_surface():
    """SandboxHost's public members: name → ("property", None) or
    ("method", [parameter names after self])."""
    tree = ast.parse(COMPONENT.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SandboxHost")
    out = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            if any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list):
                out[node.name] = ("property", None)
            else:
                params = [a.arg for a in node.args.args[1:]]
                if node.args.kwarg:
                    params.append("**" + node.args.kwarg.arg)
                out[node.name] = ("method", params)
    return out


def fake_surface():
    host = FakeHost()
    out = {}
    for name in dir(host):
        if name.startswith("_") or name in testing.INSPECTION:
            continue
        member = getattr(type(host), name, None)
        if callable(member):
            sig = inspect.signature(member)
            params = []
            for p in list(sig.parameters.values())[1:]:
                params.append("**" + p.name if p.kind is p.VAR_KEYWORD else p.name)
            out[name] = ("method", params)
        else:
            out[name] = ("property", None)
    return out


def test_the_fake_host_has_exactly_the_sandbox_hosts_surface():
    sandbox, fake = sandbox_surface(), fake_surface()
    assert sandbox, "SandboxHost not found in component.py"
    missing = sorted(set(sandbox) - set(fake))
    extra = sorted(set(fake) - set(sandbox))
    assert not missing, f"the sandbox's host has {missing}, FakeHost has not"
    assert not extra, f"FakeHost offers {extra}, which the sandbox's host lacks: a unit using them traps in the component"
    for name, kind in sandbox.items():
        assert fake[name] == kind, f"{name}: sandbox {kind}, fake {fake[name]}"


def test_inspection_fields_are_fields_of_the_fake_only():
    host = FakeHost()
    sandbox = sandbox_surface()
    for name in testing.INSPECTION:
        assert hasattr(host, name), name
        assert name not in sandbox, f"{name} is on the real host too; drop it from INSPECTION"
