-- One database per service (each service owns its data; no service reads another's).
CREATE DATABASE sipas_registry;
CREATE DATABASE sipas_sampling;
CREATE DATABASE sipas_ballots;
CREATE DATABASE sipas_scoring;
CREATE DATABASE sipas_publishing;
