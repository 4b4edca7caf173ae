name 'seatgeek'
description 'Sample: what every seatgeek server runs (base packages, service registry hooks)'
version '0.1.0'
