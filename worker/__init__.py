"""The Redis worker service: loads the model once, decodes batches of jobs, publishes results, reports
its health and Prometheus metrics. The only process that holds TensorFlow.
"""
