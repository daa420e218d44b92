"""When things run: Azure ML's schedule triggers (cron and recurrence) and their instants.

triggers    Cron and Recurrence, their problems, and the instants they fire at
zones       time zones by IANA name or by the Windows name Azure ML writes
"""
