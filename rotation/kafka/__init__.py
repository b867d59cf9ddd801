"""Kafka wrappers shared by the publisher and the rotation, free of Django.

`producer`: batches produced in order and confirmed; `consumer`: one lane at a
time from an explicit offset; `admin`: topics created, grown and identified.
"""
