"""The instrumentation every CodeQual component uses: logs, errors, metrics, traces, resources.

``codequal.telemetry.setup.setup_telemetry`` wires the parts together once, at start. This
package imports no web framework.
"""
