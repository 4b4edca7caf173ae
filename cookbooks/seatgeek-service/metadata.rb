name 'seatgeek-service'
description 'Sample: the services seatgeek runs; each recipe is one service'
version '0.1.0'
depends 'seatgeek'
